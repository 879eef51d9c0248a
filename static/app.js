// Inbox keyboard shortcuts and live countdowns. No inline scripts: the CSP forbids them.
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
    if (event.key === "j") {
      select(list[Math.min(at + 1, list.length - 1)]);
    } else if (event.key === "k") {
      select(list[Math.max(at - 1, 0)]);
    } else if ((event.key === "a" || event.key === "r") && selected && list.includes(selected)) {
      // Only the highlighted row is ever decided by a key.
      const button = selected.querySelector(event.key === "a" ? "button.approve" : "button.reject");
      if (button) button.click();
    } else if (event.key === "Enter" && selected && list.includes(selected)) {
      const link = selected.querySelector("a.title");
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
  }, 1000);
})();
