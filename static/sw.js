// The dashboard's service worker, served at /sw.js (scope "/") by approvals/dashboard/shell.py,
// which fills in VERSION (a digest of the files under static/) and SHELL (the URLs below).
//
// What it keeps: the shell only, the static files and the offline page, in a cache named
// after VERSION (a deploy that changes a static file installs a new worker and drops the old
// cache). What it never keeps or serves from a cache: a page with data (the inbox, a
// request, history, ...), an API answer (/v1/...), a live stream, a form post. Those go to
// the network as if there were no worker; a page that cannot load shows the offline page.
//
// It also shows Web Push notifications. A push's data is JSON:
//   {"title", "body", "url", "tag", "actions": [{"action", "title", "url"}], "decided": bool}
// A new request shows a notification (tag, renotify); "decided" closes those with its tag and
// says "Decided elsewhere". A click opens the clicked action's url, else the push's url.
"use strict";

const VERSION = "__VERSION__";
const SHELL = ["__SHELL__"];
const CACHE = "approvals-shell-" + VERSION;
const OFFLINE = "/offline";

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // "reload": past the browser's HTTP cache, so a new version never keeps an old file.
    await cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name !== CACHE && name.startsWith("approvals-")) await caches.delete(name);
    }
    if (self.registration.navigationPreload) await self.registration.navigationPreload.enable();
    await self.clients.claim();
  })());
});

// A static file: the shell's files and anything else under /static/ (versioned by the cache).
function isStatic(url) {
  return url.origin === self.location.origin && url.pathname.startsWith("/static/");
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return; // form posts and API writes: the network's alone
  const url = new URL(request.url);
  if (request.mode === "navigate") {
    event.respondWith(page(event));
  } else if (isStatic(url)) {
    event.respondWith(staticFile(request));
  }
  // Anything else (/v1/..., /dashboard/stream, htmx fragments, /manifest.webmanifest) is not
  // answered here: the browser fetches it as if there were no worker, and nothing is stored.
});

// A page: always from the network (never stored); the offline page when that fails.
async function page(event) {
  try {
    const preloaded = await event.preloadResponse;
    return preloaded || await fetch(event.request);
  } catch (error) {
    const offline = await caches.match(OFFLINE, { cacheName: CACHE });
    return offline || Response.error();
  }
}

// Cache first; a static file fetched the first time is kept (a whole 200 answer only).
async function staticFile(request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(request);
  if (kept) return kept;
  const answer = await fetch(request);
  if (answer.status === 200 && answer.type === "basic") await cache.put(request, answer.clone());
  return answer;
}

// Web Push.

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = { body: event.data ? event.data.text() : "" };
  }
  event.waitUntil(notify(data || {}));
});

function text(value, fallback) {
  return typeof value === "string" && value ? value : fallback;
}

async function notify(data) {
  const tag = text(data.tag, undefined);
  const url = text(data.url, "/");
  if (data.decided) {
    if (tag) {
      for (const shown of await self.registration.getNotifications({ tag })) shown.close();
    }
    // A browser must show something for each push: a quiet, short note in the same place.
    return self.registration.showNotification("Decided elsewhere", {
      body: text(data.body, text(data.title, "")),
      tag,
      renotify: false,
      silent: true,
      icon: "/static/icons/icon-192.png",
      data: { url, actions: {} },
    });
  }
  const actions = (Array.isArray(data.actions) ? data.actions : []).filter(
    (a) => a && typeof a.action === "string" && typeof a.title === "string");
  return self.registration.showNotification(text(data.title, "Approval requested"), {
    body: text(data.body, ""),
    tag,
    renotify: Boolean(tag), // a notification with a tag alerts again only when asked to
    requireInteraction: false,
    icon: "/static/icons/icon-192.png",
    actions: actions.map((a) => ({ action: a.action, title: a.title })),
    data: {
      url,
      actions: Object.fromEntries(actions.map((a) => [a.action, text(a.url, url)])),
    },
  });
}

// Where a click on a notification (or on one of its actions) goes: an http(s) URL.
function target(notification, action) {
  const data = notification.data || {};
  const chosen = action && data.actions ? data.actions[action] : undefined;
  try {
    const href = new URL(text(chosen, text(data.url, "/")), self.location.origin).href;
    if (/^https?:/.test(href)) return href;
  } catch (error) { /* not a URL: the inbox instead */ }
  return new URL("/", self.location.origin).href;
}

// A window of this site already showing href, or null.
async function windowAt(href) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  return windows.find((client) => client.url === href) || null;
}

self.addEventListener("notificationclick", (event) => {
  const href = target(event.notification, event.action);
  event.notification.close();
  event.waitUntil((async () => {
    const open = await windowAt(href);
    return open ? open.focus() : self.clients.openWindow(href);
  })());
});
