// Inbox keyboard shortcuts, the undo window of one-click and one-key decisions, live
// countdowns, the count in the title, selection for batch decisions, sorting by time left and
// opt-in notifications. No inline scripts: the CSP forbids them.
(() => {
  "use strict";

  const rows = () => Array.from(document.querySelectorAll("#inbox .row"));
  let selected = null;

  // Undo. A button marked data-undo (a row's Approve or Reject, or the Confirm / "with this
  // reason" button of a row's step) decides at once on the server, so it is held here: the row
  // shows "Approving…" with Undo and a countdown, and only after UNDO_MS is the same request
  // sent (the form's fields as they were when clicked: CSRF token and arguments digest).
  // Undo, or u / z, drops it and nothing is sent. A decided row leaves with "✓ Approved".
  const UNDO_MS = 5000;
  const SHOWN_MS = 2000;
  const DOING = { approve: "Approving…", reject: "Rejecting…", answer: "Answering…" };
  const DONE = { approved: "Approved", rejected: "Rejected", answered: "Answered" };
  const waiting = new Map(); // approval id → a held decision, oldest first
  let keyed = false; // true while a key press clicks a row's button

  window.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button[data-undo]");
    const row = button && button.closest("#inbox .row");
    if (!row || !button.form) return;
    // Before htmx sees it: this click sends nothing now.
    event.preventDefault();
    event.stopImmediatePropagation();
    if (waiting.has(row.dataset.approval) || !button.form.reportValidity()) return;
    hold(row, button);
  }, true);

  function hold(row, button) {
    const body = new URLSearchParams(new FormData(button.form, button));
    const entry = {
      id: row.dataset.approval,
      url: button.form.action,
      body,
      decision: body.get("decision"), // the button's value, or the step form's field
      title: (row.querySelector("a.title") || row).textContent.trim(),
      ends: Date.now() + UNDO_MS,
      byKey: keyed,
    };
    entry.timer = setTimeout(() => send(entry), UNDO_MS);
    entry.tick = setInterval(() => show(entry), 250);
    waiting.set(entry.id, entry);
    show(entry);
    const undo = row.querySelector(".undo-box .undo");
    if (undo && !entry.byKey) undo.focus();
  }

  function stop(entry) {
    clearTimeout(entry.timer);
    clearInterval(entry.tick);
    waiting.delete(entry.id);
  }

  // The held state in the row (again after a live update re-rendered the row).
  function show(entry) {
    const row = document.getElementById("approval-" + entry.id);
    if (!row) { stop(entry); return; } // decided elsewhere or expired: nothing to send
    const actions = row.querySelector(".actions");
    let box = actions.querySelector(".undo-box");
    if (!box) {
      for (const hint of actions.querySelectorAll(".risk-hint")) hint.remove();
      box = document.createElement("div");
      box.className = "undo-box";
      box.innerHTML = '<p class="pending" role="status"><strong></strong> ' +
        '<span class="countdown" aria-hidden="true"></span></p>' +
        '<button type="button" class="undo" aria-keyshortcuts="u z">Undo</button>' +
        '<span class="drain" aria-hidden="true"></span>';
      box.querySelector("strong").textContent = DOING[entry.decision] || "Sending…";
      box.querySelector(".drain").style.animationDelay = (entry.ends - Date.now() - UNDO_MS) + "ms";
      actions.appendChild(box);
    }
    const seconds = Math.max(0, Math.ceil((entry.ends - Date.now()) / 1000));
    box.querySelector(".countdown").textContent = seconds + " s";
  }

  function cancel(entry) {
    stop(entry);
    const row = document.getElementById("approval-" + entry.id);
    if (!row) return;
    const actions = row.querySelector(".actions");
    const box = actions.querySelector(".undo-box");
    if (box) box.remove();
    const note = document.createElement("p");
    note.className = "undone";
    note.setAttribute("role", "status");
    note.textContent = "Undone: nothing was sent.";
    actions.appendChild(note);
    setTimeout(() => note.remove(), SHOWN_MS);
    if (entry.byKey) select(row);
    else (actions.querySelector(`button[data-undo][value="${entry.decision}"]`) ||
      actions.querySelector("button[data-undo]") || row).focus(); // the button clicked
  }

  function undoLast() {
    const last = Array.from(waiting.values()).pop();
    if (last) cancel(last);
    return Boolean(last);
  }

  function post(entry, keepalive) {
    return fetch(entry.url, {
      method: "POST", body: entry.body, credentials: "same-origin", keepalive,
      headers: { "HX-Request": "true" }, // answered with the row's fragment, as htmx gets it
    });
  }

  async function send(entry) {
    stop(entry);
    const row = document.getElementById("approval-" + entry.id);
    if (!row) return;
    const strong = row.querySelector(".undo-box strong");
    if (strong) strong.textContent = "Sending…";
    const late = row.querySelector(".undo-box .undo");
    if (late) late.disabled = true;
    // Where the confirmation shows: the row's place, kept even if the live stream removes
    // the row (its resolution) before the answer arrives.
    const ghost = document.createElement("div");
    ghost.className = "gone " + entry.decision;
    ghost.setAttribute("role", "status");
    ghost.hidden = true;
    row.before(ghost);
    let html = null;
    let failed = "The decision was not sent: the network failed. Try again.";
    try {
      const answer = await post(entry, false);
      const text = await answer.text();
      if ((answer.headers.get("content-type") || "").includes("text/html")) {
        html = text;
      } else {
        try { failed = "Not decided: " + JSON.parse(text).message; } catch (error) { /* as is */ }
      }
    } catch (error) { /* the network: said below */ }
    const fragment = document.createElement("template");
    fragment.innerHTML = html || "";
    const outcome = fragment.content.querySelector(".outcome");
    const status = outcome && !outcome.querySelector(".error") &&
      Object.keys(DONE).find((s) => outcome.classList.contains(s));
    const current = document.getElementById("approval-" + entry.id);
    if (status) {
      ghost.textContent = "✓ " + DONE[status] + ": " + entry.title;
      ghost.hidden = false;
      if (current) current.remove();
      setTimeout(() => ghost.remove(), SHOWN_MS);
      return;
    }
    ghost.remove();
    if (!current) return;
    const actions = current.querySelector(".actions");
    if (html === null) {
      const box = actions.querySelector(".undo-box");
      if (box) box.remove();
      const error = document.createElement("p");
      error.className = "error";
      error.setAttribute("role", "alert");
      error.textContent = failed;
      actions.prepend(error);
    } else {
      actions.innerHTML = html; // what the button's own request would have swapped in
      if (window.htmx) window.htmx.process(actions);
    }
  }

  // Leaving the page sends what is held: the reviewer decided and moved on.
  window.addEventListener("pagehide", () => {
    for (const entry of Array.from(waiting.values())) {
      stop(entry);
      post(entry, true).catch(() => {});
    }
  });

  document.addEventListener("click", (event) => {
    const target = event.target.closest ? event.target : null;
    const undo = target && target.closest(".undo-box .undo");
    if (undo) {
      const row = undo.closest(".row");
      const entry = row && waiting.get(row.dataset.approval);
      if (entry) cancel(entry);
      return;
    }
    const tools = target && target.closest("button.tools-toggle");
    if (tools) { // the inbox's filters and batch tools, folded away on a phone
      tools.setAttribute("aria-expanded", String(tools.getAttribute("aria-expanded") !== "true"));
      return;
    }
    const reveal = target && target.closest("button.reveal");
    if (reveal) { // "Answer…" in a row or on the request page: its answer box, on demand
      const box = document.getElementById(reveal.getAttribute("aria-controls"));
      if (!box) return;
      box.hidden = !box.hidden;
      reveal.setAttribute("aria-expanded", String(!box.hidden));
      const field = box.querySelector("textarea, input:not([type=hidden])");
      if (!box.hidden && field) field.focus();
    }
  });

  // A high-risk request is never decided by one key: the key shows its button and says so.
  function risky(row, button) {
    let hint = row.querySelector(".risk-hint");
    if (!hint) {
      hint = document.createElement("p");
      hint.className = "risk-hint";
      hint.setAttribute("role", "status");
      row.querySelector(".actions").appendChild(hint);
    }
    hint.textContent = "High risk: click " + button.textContent.trim();
    button.focus();
  }

  function select(row) {
    for (const r of rows()) r.classList.toggle("selected", r === row);
    selected = row;
    if (row) {
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "nearest" });
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.metaKey || event.ctrlKey || event.altKey) return;
    const target = event.target.closest ? event.target : null;
    if (target && target.closest("input, textarea, select")) return;
    if ((event.key === "u" || event.key === "z") && undoLast()) {
      event.preventDefault();
      return;
    }
    // On a focused button only moving works: Enter and Space are the button's own.
    if (target && target.closest("button") && event.key !== "j" && event.key !== "k") return;
    const list = rows();
    if (!list.length) return;
    const at = list.indexOf(selected);
    const current = selected && list.includes(selected) ? selected : null;
    if (event.key === "j") {
      select(list[Math.min(at + 1, list.length - 1)]);
    } else if (event.key === "k") {
      select(list[Math.max(at - 1, 0)]);
    } else if ((event.key === "a" || event.key === "r") && current) {
      // Only the highlighted row is ever decided by a key, and only through its own buttons:
      // a request that needs a confirmation or a reason answers with that step first, and a
      // decision waits out its undo window like a click.
      const button = current.querySelector(
        event.key === "a" ? ".actions button.approve" : ".actions button.reject");
      if (!button || waiting.has(current.dataset.approval)) {
        // nothing to press, or already held
      } else if (current.dataset.risk === "high") {
        risky(current, button);
      } else {
        keyed = true;
        try { button.click(); } finally { keyed = false; }
      }
    } else if (event.key === "x" && current) {
      const box = current.querySelector("input.pick");
      if (box) { box.checked = !box.checked; picked(); }
    } else if (event.key === "Enter" && current) {
      const link = current.querySelector("a.title");
      if (link) link.click();
    } else {
      return;
    }
    event.preventDefault();
  });

  function span(seconds) {
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
      if (seconds >= size) return Math.floor(seconds / size) + unit;
    }
    return seconds + "s";
  }

  setInterval(() => {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-expires]")) {
      const seconds = Math.floor((Date.parse(el.dataset.expires) - now) / 1000);
      el.textContent = seconds > 0 ? span(seconds) + " left" : "due now";
      // The instants come with the row (approvals/views/render.py `due` holds the rule).
      const soon = Boolean(el.dataset.soonAt) && now >= Date.parse(el.dataset.soonAt);
      el.classList.toggle("soon", soon);
      el.classList.toggle("warn", !soon && Boolean(el.dataset.warnAt) &&
        now >= Date.parse(el.dataset.warnAt));
    }
    for (const el of document.querySelectorAll("[data-claim-until]")) {
      if (Date.parse(el.dataset.claimUntil) <= Date.now()) el.remove(); // the claim expired
    }
  }, 1000);

  // Selection for batch decisions.
  function picked() {
    const label = document.getElementById("picked");
    if (label) label.textContent = document.querySelectorAll("#inbox input.pick:checked").length + " selected";
  }
  document.addEventListener("change", (event) => {
    if (event.target.matches && event.target.matches("input.pick")) picked();
  });

  // The inbox as a work queue: count, order, and a cue for new requests.
  const inbox = document.getElementById("inbox");
  if (!inbox) return;
  const seen = new Set(rows().map((r) => r.id));
  const notify = document.getElementById("notify");
  const wanted = () => localStorage.getItem("approvals.notify") === "1";

  function showNotify() {
    if (!notify) return;
    notify.setAttribute("aria-pressed", wanted() ? "true" : "false");
    notify.textContent = wanted() ? "Notifications on" : "Notify me of new requests";
  }
  if (notify) {
    showNotify();
    notify.addEventListener("click", async () => {
      if (wanted()) {
        localStorage.removeItem("approvals.notify");
      } else {
        if ("Notification" in window && Notification.permission !== "granted") {
          await Notification.requestPermission();
        }
        localStorage.setItem("approvals.notify", "1");
      }
      showNotify();
    });
  }

  function cue() {
    try {
      const audio = new (window.AudioContext || window.webkitAudioContext)();
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.value = 0.08;
      tone.connect(gain).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.15);
      tone.onended = () => audio.close();
    } catch (error) { /* no audio: the notification still shows */ }
    document.dispatchEvent(new CustomEvent("approvals:cue"));
  }

  function arrived(row) {
    if (!wanted() || !document.hidden) return;
    const title = row.querySelector("a.title");
    if ("Notification" in window && Notification.permission === "granted") {
      const note = new Notification("Approval requested", {
        body: title ? title.textContent : "", tag: row.id,
      });
      note.onclick = () => { window.focus(); if (title) title.click(); };
    }
    cue();
  }

  function sortByDue() {
    if (inbox.dataset.sort !== "due") return;
    const due = (r) => (r.dataset.due ? Date.parse(r.dataset.due) : Infinity);
    const list = rows();
    const ordered = list.slice().sort((x, y) => due(x) - due(y) ||
      Date.parse(x.dataset.created) - Date.parse(y.dataset.created));
    if (ordered.some((r, i) => r !== list[i])) for (const r of ordered) inbox.appendChild(r);
  }

  function refresh() {
    const list = rows();
    document.title = "(" + list.length + ") Approvals";
    const count = document.getElementById("count");
    if (count) count.textContent = String(list.length);
    for (const row of list) {
      if (!seen.has(row.id)) { seen.add(row.id); arrived(row); }
    }
    picked();
  }

  new MutationObserver(() => {
    refresh();
    sortByDue();
    for (const entry of Array.from(waiting.values())) show(entry); // a re-rendered row stays held
  })
    .observe(inbox, { childList: true });
  refresh();
})();
