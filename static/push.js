// Web Push on this device, from the Settings page: register the service worker (/sw.js),
// ask permission, subscribe with the service's VAPID key and hand the subscription to the
// service; or turn it off again. No inline scripts: the CSP forbids them.
(() => {
  "use strict";

  const section = document.getElementById("push");
  if (!section) return;
  const status = section.querySelector("[data-push-status]");
  const on = section.querySelector("[data-push-on]");
  const off = section.querySelector("[data-push-off]");
  const csrf = section.dataset.csrf;

  const say = (text) => { status.textContent = text; };
  // "Turn on" stays offered when this browser is subscribed: sending the subscription again
  // restores a device removed from the list below (the service keeps one row per browser).
  const show = (subscribed) => {
    on.hidden = false;
    off.hidden = !subscribed;
  };

  if (!window.isSecureContext) {
    say("Notifications need this page to be served over https.");
    return;
  }
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say("This browser cannot get notifications from here. On an iPhone or iPad, add this site to the Home Screen first and open it from there.");
    return;
  }

  // The VAPID key as PushManager takes it: base64url to bytes.
  const bytes = (text) => {
    const base64 = (text + "=".repeat((4 - (text.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  };

  const post = async (path, body) => {
    const answer = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (!answer.ok) {
      let message = `the service answered ${answer.status}`;
      try { message = (await answer.json()).message || message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return answer.json();
  };

  const worker = () => navigator.serviceWorker.register("/sw.js", { scope: "/" })
    .then(() => navigator.serviceWorker.ready);

  const turnOn = async () => {
    on.disabled = true;
    try {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") {
        say(permission === "denied"
          ? "Notifications are blocked for this site: allow them in the browser's site settings, then try again."
          : "Notifications were not allowed.");
        return;
      }
      say("Turning notifications on…");
      const registration = await worker();
      const keyAnswer = await fetch("/dashboard/push/key", { credentials: "same-origin" });
      if (!keyAnswer.ok) throw new Error(`the service answered ${keyAnswer.status}`);
      const key = bytes((await keyAnswer.json()).publicKey);
      let subscription = await registration.pushManager.getSubscription();
      if (subscription) {
        // Subscribed to another key (the service's key changed): start again with this one.
        const current = subscription.options && subscription.options.applicationServerKey;
        const same = current && new Uint8Array(current).join() === key.join();
        if (!same) {
          await subscription.unsubscribe();
          subscription = null;
        }
      }
      if (!subscription) {
        subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
      }
      await post("/dashboard/push/subscribe", subscription.toJSON());
      window.location.reload(); // the list of devices now shows this one
    } catch (error) {
      say(`Notifications could not be turned on: ${error.message || error}`);
    } finally {
      on.disabled = false;
    }
  };

  const turnOff = async () => {
    off.disabled = true;
    try {
      const registration = await navigator.serviceWorker.getRegistration("/");
      const subscription = registration && (await registration.pushManager.getSubscription());
      if (subscription) {
        await post("/dashboard/push/unsubscribe", { endpoint: subscription.endpoint });
        await subscription.unsubscribe();
      }
      window.location.reload();
    } catch (error) {
      say(`Notifications could not be turned off: ${error.message || error}`);
    } finally {
      off.disabled = false;
    }
  };

  on.addEventListener("click", turnOn);
  off.addEventListener("click", turnOff);

  navigator.serviceWorker.getRegistration("/")
    .then((registration) => registration && registration.pushManager.getSubscription())
    .then((subscription) => {
      show(Boolean(subscription) && Notification.permission === "granted");
      if (subscription && Notification.permission === "granted") say("Notifications are on for this device.");
    })
    .catch(() => show(false));
})();
