// The installable app: registers the service worker (/sw.js, scope "/"), which keeps the
// shell (styles, scripts, icons, the offline page) and never a page with data or an API
// answer. The offline page tries again by itself when the network is back.
(() => {
  "use strict";

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {
      // No worker (a private window, an insecure origin): the dashboard works the same online.
    });
  }
  if (document.querySelector("[data-offline]")) {
    window.addEventListener("online", () => window.location.reload());
  }
})();
