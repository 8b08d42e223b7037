/* Tailored tracker: first-party behaviour events, batched and sent to the site's own server.
 *
 *   <script src=".../segments/tracker.js" defer data-endpoint="/api/events/"></script>
 *
 * Tracks clicks on [data-track="name"] elements (properties from data-track-* attributes),
 * impressions and clicks of personalised content ([data-tailored-block] elements),
 * scroll depth (25/50/75/100, once each per page), the touch screen of an iPad presenting
 * itself as a Mac (a "device_hint" event), and custom events via
 * window.tailored.track(name, properties). No dependencies, no inline script, no eval: works
 * under a strict Content-Security-Policy. The server records nothing without the visitor's
 * consent; when consent.js has already said the visitor did not consent, nothing is sent.
 */
(function () {
  "use strict";
  var w = window, d = document;
  var script = d.currentScript || d.querySelector("script[data-endpoint][src*='tracker']");
  var endpoint = script && script.getAttribute("data-endpoint");
  if (!endpoint || (w.tailored && w.tailored.track)) { return; }
  var purpose = script.getAttribute("data-purpose") || "personalization";

  var MAX_BATCH = 20, FLUSH_MS = 5000, MAX_BYTES = 15000;  // the server accepts 16 KiB
  var NAME = /^[a-z][a-z0-9_]{0,63}$/, KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
  var LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  var queue = [], timer = null;

  function eventId() {
    var bytes = new Uint8Array(16), hex = "";
    w.crypto.getRandomValues(bytes);
    for (var i = 0; i < bytes.length; i++) { hex += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16); }
    return hex;
  }

  // The server refuses a whole batch if one event is invalid: drop bad events here instead.
  function clean(name, properties) {
    if (typeof name !== "string" || !NAME.test(name)) { return null; }
    if (properties != null && typeof properties !== "object") { return null; }
    var out = {}, count = 0;
    for (var key in properties || {}) {
      if (!Object.prototype.hasOwnProperty.call(properties, key)) { continue; }
      var value = properties[key], type = typeof value;
      if (!KEY.test(key) || ++count > 32) { return null; }
      if (type === "string") {
        // The server refuses text it cannot store: a NUL character, a lone surrogate.
        if (value.indexOf("\u0000") !== -1 || LONE.test(value)) { return null; }
        value = value.slice(0, 512);
        out[key] = /[\uD800-\uDBFF]$/.test(value) ? value.slice(0, -1) : value;  // a cut pair
      }
      else if ((type === "number" && isFinite(value)) || type === "boolean" || value === null) { out[key] = value; }
      else { return null; }
    }
    return out;
  }

  function track(name, properties) {
    var props = clean(name, properties);
    if (!props) {
      if (w.console) { w.console.warn("tailored: invalid event ignored", name, properties); }
      return false;
    }
    queue.push({ name: name, properties: props, event_id: eventId() });
    if (queue.length >= MAX_BATCH) { flush(); }
    else if (!timer) { timer = setTimeout(flush, FLUSH_MS); }
    return true;
  }

  function allowed() {
    var state = w.tailoredConsent;  // set by consent.js in client mode; else the server decides
    return !state || !!(state.purposes && state.purposes.indexOf(purpose) !== -1);
  }

  function byteLength(text) {
    return encodeURIComponent(text).replace(/%[0-9A-F]{2}/g, "x").length;
  }

  function send(batch, isRetry) {
    var body = JSON.stringify({ events: batch });
    if (byteLength(body) > MAX_BYTES) {
      if (batch.length > 1) {
        var half = Math.ceil(batch.length / 2);
        send(batch.slice(0, half), isRetry);
        send(batch.slice(half), isRetry);
      }
      return;  // a single event too large for the server is dropped
    }
    // A string body goes as text/plain: a "simple" request, no preflight.
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) { return; }
    if (!w.fetch) { return; }
    w.fetch(endpoint, {
      method: "POST", body: body, keepalive: true, credentials: "same-origin",
      headers: { "Content-Type": "text/plain;charset=UTF-8" }
    }).then(function (response) {
      if (response.status >= 500) { throw new Error("server error"); }
    }).catch(function () {
      // Retry once: event ids let the server drop any event that did arrive.
      if (!isRetry) { setTimeout(function () { send(batch, true); }, FLUSH_MS); }
    });
  }

  function flush() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (!allowed()) { queue = []; return; }
    while (queue.length) { send(queue.splice(0, MAX_BATCH), false); }
  }

  // Clicks (add-to-cart included): the nearest element with data-track names the event.
  d.addEventListener("click", function (event) {
    var node = event.target;
    while (node && node.nodeType === 1 && !node.hasAttribute("data-track")) { node = node.parentNode; }
    if (!node || node.nodeType !== 1) { return; }
    var properties = {};
    for (var i = 0; i < node.attributes.length; i++) {
      var attr = node.attributes[i];
      if (attr.name.indexOf("data-track-") === 0) {
        properties[attr.name.slice(11).replace(/-/g, "_")] = attr.value;
      }
    }
    track(node.getAttribute("data-track"), properties);
  }, true);

  // Scroll depth milestones, once each per page (a page too short to scroll sends none).
  var milestones = [25, 50, 75, 100], pending = false;
  function measureScroll() {
    pending = false;
    var root = d.documentElement, height = Math.max(root.scrollHeight, d.body ? d.body.scrollHeight : 0);
    var seen = height ? Math.round(((w.pageYOffset || root.scrollTop) + w.innerHeight) / height * 100) : 0;
    while (milestones.length && seen >= milestones[0]) { track("scroll", { depth: milestones.shift() }); }
    if (!milestones.length) { w.removeEventListener("scroll", onScroll); }
  }
  function onScroll() {
    if (pending) { return; }
    pending = true;
    if (w.requestAnimationFrame) { w.requestAnimationFrame(measureScroll); } else { setTimeout(measureScroll, 100); }
  }
  w.addEventListener("scroll", onScroll, { passive: true });

  // Personalised content (markup with data-tailored-block / -variant / -page, see
  // docs/delivery.md): an "impression" once per page view per block, when at least half of it
  // (or half the viewport, for a block taller than that) is visible, and a "click" when a link
  // or button inside it is clicked.
  function variantOf(node) {
    var props = {
      block: node.getAttribute("data-tailored-block"),
      variant: node.getAttribute("data-tailored-variant")
    };
    var page = parseInt(node.getAttribute("data-tailored-page"), 10);
    if (page > 0) { props.page = page; }
    return props;
  }
  var shown = {};
  function observeBlocks() {
    var blocks = d.querySelectorAll("[data-tailored-block]");
    if (!blocks.length || !w.IntersectionObserver) { return; }
    var observer = new w.IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        var enough = entry.intersectionRatio >= 0.5 ||
          entry.intersectionRect.height >= 0.5 * (w.innerHeight || d.documentElement.clientHeight);
        if (!entry.isIntersecting || !enough) { return; }
        observer.unobserve(entry.target);
        var props = variantOf(entry.target);
        if (shown[props.block]) { return; }
        shown[props.block] = true;
        track("impression", props);
      });
    }, { threshold: [0, 0.25, 0.5, 0.75, 1] });
    for (var i = 0; i < blocks.length; i++) { observer.observe(blocks[i]); }
  }
  if (d.readyState === "loading") { d.addEventListener("DOMContentLoaded", observeBlocks); }
  else { observeBlocks(); }

  d.addEventListener("click", function (event) {
    var node = event.target, control = null;
    while (node && node.nodeType === 1) {
      if (!control && /^(A|BUTTON)$/.test(node.tagName)) { control = node; }
      if (control && node.hasAttribute("data-tailored-block")) {
        track("click", variantOf(node));
        return;
      }
      node = node.parentNode;
    }
  }, true);

  // An iPad on iPadOS 13 or later presents itself as desktop Safari ("Macintosh") and sends no
  // client hints: only its touch screen tells it from a Mac. Reported once per page (recorded
  // only with consent, like every event), so the visitor's device becomes "tablet".
  var touchPoints = navigator.maxTouchPoints || 0;
  if (touchPoints > 1 && /Macintosh/.test(navigator.userAgent || "")) {
    track("device_hint", { touch_points: touchPoints });
  }

  // Send what is queued before the page goes away (sendBeacon survives unloading).
  d.addEventListener("visibilitychange", function () {
    if (d.visibilityState === "hidden") { flush(); }
  });
  w.addEventListener("pagehide", flush);

  w.tailored = w.tailored || {};
  w.tailored.track = track;
  w.tailored.flush = flush;
})();
