/* Tailored consent: Google Consent Mode signals and, in client mode, the visitor's banner state.
 * No inline script and no eval: works under a strict Content-Security-Policy. */
(function () {
  "use strict";
  var w = window;
  w.dataLayer = w.dataLayer || [];
  function gtag() { w.dataLayer.push(arguments); }

  var block = document.getElementById("tailored-consent-mode");
  if (block) {
    try { gtag("consent", "default", JSON.parse(block.textContent)); } catch (e) { /* ignore */ }
  }

  var root = document.querySelector("[data-consent-root][data-consent-state-url]");
  if (!root) { return; }
  fetch(root.getAttribute("data-consent-state-url"), {
    credentials: "same-origin",
    headers: { "Accept": "application/json" },
    cache: "no-store"
  }).then(function (response) {
    return response.ok ? response.json() : null;
  }).then(function (state) {
    if (!state) { return; }
    w.tailoredConsent = state;
    root.querySelectorAll("[data-consent-csrf]").forEach(function (input) {
      input.value = state.csrf_token;
    });
    var banner = root.querySelector("[data-consent-banner]");
    if (banner) { banner.hidden = !!state.decided; }
    if (state.consent_mode) { gtag("consent", "update", state.consent_mode); }
  }).catch(function () { /* keep the neutral page */ });
})();
