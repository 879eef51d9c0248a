// Inbox keyboard shortcuts, live countdowns, the count in the title, selection for batch
// decisions, sorting by time left and opt-in notifications. No inline scripts: the CSP forbids them.
(() => {
  "use strict";

  const rows = () => Array.from(document.querySelectorAll("#inbox .row"));
  let selected = null;

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
    if (event.target.closest && event.target.closest("input, textarea, select, button")) return;
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
      // a request that needs a confirmation or a reason answers with that step first.
      const button = current.querySelector(
        event.key === "a" ? ".actions button.approve" : ".actions button.reject");
      if (button) button.click();
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
    for (const el of document.querySelectorAll("[data-expires]")) {
      const seconds = Math.floor((Date.parse(el.dataset.expires) - Date.now()) / 1000);
      el.textContent = seconds > 0 ? span(seconds) + " left" : "due now";
      el.classList.toggle("soon", seconds < 120);
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

  new MutationObserver(() => { refresh(); sortByDue(); })
    .observe(inbox, { childList: true });
  refresh();
})();
