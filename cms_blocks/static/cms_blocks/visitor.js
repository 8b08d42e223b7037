/* Fills [data-tailored-visitor-segments] placeholders (rendered instead of the visitor's
 * segments on pages shared through a cache, see docs/delivery.md) from the visitor endpoint.
 *
 *   <script src=".../cms_blocks/visitor.js" defer data-endpoint="/api/personalization/visitor/"></script>
 */
(function () {
  "use strict";
  var d = document, script = d.currentScript;
  var endpoint = script && script.getAttribute("data-endpoint");
  var slots = d.querySelectorAll("[data-tailored-visitor-segments]");
  if (!endpoint || !slots.length || !window.fetch) { return; }
  window.fetch(endpoint, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) { return response.ok ? response.json() : { segments: [] }; })
    .then(function (data) {
      for (var i = 0; i < slots.length; i++) {
        var slot = slots[i];
        slot.textContent = "";
        if (!data.segments.length) { slot.textContent = "none"; }
        data.segments.forEach(function (slug, n) {
          if (n) { slot.appendChild(d.createTextNode(" ")); }
          var b = d.createElement("b");
          b.textContent = slug;  // text, never markup
          slot.appendChild(b);
        });
      }
    })
    .catch(function () { for (var i = 0; i < slots.length; i++) { slots[i].textContent = "none"; } });
})();
