/* Tailored rule builder: edits a segment's rule (a JSON condition tree) with clicks.
 *
 * Progressive enhancement of the widget's textarea (cms_blocks/widgets.py): without this
 * script the editor edits the JSON. With it, the tree is drawn as nestable groups of
 * conditions; every change rewrites the textarea, and (debounced) asks the admin's rule-check
 * endpoint for the rule in plain words, its estimated size and its problems, each shown next
 * to the condition it concerns. No dependencies, no build step, no inline script.
 */
(function () {
  "use strict";
  var d = document;

  var TYPE_LABELS = {
    event_count: "Number of events",
    event_without: "Event without a follow-up",
    feature: "Feature",
    visited: "Visited page",
    context: "Request context",
    model: "Model score",
    cluster: "Model cluster",
    all: "Group: all of",
    any: "Group: any of"
  };
  var LEAF_TYPES = ["event_count", "event_without", "feature", "visited", "context", "model", "cluster"];
  var OP_LABELS = {
    eq: "is", ne: "is not", lt: "<", lte: "≤", gt: ">", gte: "≥", "in": "is one of",
    not_in: "is none of", contains: "contains", regex: "matches pattern", exists: "is known"
  };
  var EVENTS = ["page_view", "click", "add_to_cart", "purchase", "signup", "impression", "search"];
  var UNITS = [["s", "seconds"], ["m", "minutes"], ["h", "hours"], ["d", "days"]];

  function el(tag, attrs, children) {
    var node = d.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else if (key.slice(0, 2) === "on") { node.addEventListener(key.slice(2), attrs[key]); }
      else if (attrs[key] !== undefined && attrs[key] !== null && attrs[key] !== false) {
        node.setAttribute(key, attrs[key] === true ? "" : attrs[key]);
      }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }

  function select(options, value, onchange, label) {
    var node = el("select", { "aria-label": label, onchange: function () { onchange(node.value); } });
    options.forEach(function (option) {
      var pair = Array.isArray(option) ? option : [option, option];
      var opt = el("option", { value: pair[0], text: pair[1] });
      if (String(pair[0]) === String(value)) { opt.selected = true; }
      node.appendChild(opt);
    });
    return node;
  }

  function input(value, onchange, attrs) {
    var node = el("input", Object.assign({ type: "text" }, attrs || {}));
    node.value = value === undefined || value === null ? "" : String(value);
    node.addEventListener("input", function () { onchange(node.value); });
    return node;
  }

  function toNumber(text) {
    if (text === "" || text === null || text === undefined) { return undefined; }
    var n = Number(text);
    return isFinite(n) && String(text).trim() !== "" ? n : text;  // keep bad input: the server explains
  }

  function toInt(text) {
    var n = toNumber(text);
    return typeof n === "number" && Math.floor(n) === n ? n : n;
  }

  function splitWindow(value) {
    var m = /^([0-9]+)([smhd])$/.exec(value || "");
    return m ? { amount: m[1], unit: m[2] } : { amount: "", unit: "m" };
  }

  function defaults(type, catalog) {
    switch (type) {
      case "all": case "any": return { type: type, conditions: [defaults("event_count", catalog)] };
      case "event_count": return { type: type, event: "page_view", min: 3, window: "10m" };
      case "event_without": return { type: type, event: "add_to_cart", without: "purchase", window: "1d", min_age: "30m" };
      case "feature":
        var f = catalog.features[0];
        return { type: type, feature: f.name, op: f.kind === "number" ? "gte" : "eq", value: f.kind === "number" ? 1 : "" };
      case "visited": return { type: type, path_prefix: "/" };
      case "context": return { type: type, attribute: "device", op: "eq", value: "mobile" };
      case "model": return { type: type, model: "", op: "gte", value: 0.5 };
      case "cluster": return { type: type, model: "", cluster: "" };
    }
    return { type: type };
  }

  function Builder(root) {
    this.root = root;
    this.textarea = root.querySelector("textarea");
    this.treeBox = root.querySelector("[data-rule-builder-tree]");
    this.description = root.querySelector("[data-rule-builder-description]");
    this.estimate = root.querySelector("[data-rule-builder-estimate]");
    this.problemsBox = root.querySelector("[data-rule-builder-problems]");
    this.raw = root.querySelector("[data-rule-builder-raw]");
    this.checkUrl = root.getAttribute("data-check-url");
    var catalogNode = d.getElementById(root.getAttribute("data-catalog-id"));
    this.catalog = catalogNode ? JSON.parse(catalogNode.textContent) : { features: [], context_attributes: {}, operators: { number: [], string: [] }, dimensions: [] };
    this.timer = null;
    this.seq = 0;
    var self = this;
    this.textarea.addEventListener("input", function () { self.fromText(false); });
    this.treeBox.hidden = false;
    this.raw.open = false;
    root.classList.add("rule-builder--ready");
    this.fromText(true);
  }

  Builder.prototype.fromText = function (initial) {
    var text = this.textarea.value.trim();
    var tree;
    if (!text || text === "null") { text = ""; tree = { type: "all", conditions: [defaults("event_count", this.catalog)] }; }
    else {
      try { tree = JSON.parse(text); }
      catch (e) {
        this.tree = null;
        this.treeBox.replaceChildren(el("p", { "class": "rule-builder__bad-json", text: "The JSON below is not valid (" + e.message + "). Fix it, or start again with the builder." }),
          el("button", { type: "button", "class": "button button-small button-secondary", text: "Start again", onclick: this.reset.bind(this) }));
        this.raw.open = true;
        return;
      }
    }
    this.tree = tree;
    this.render();
    if (initial && !text) { this.write(); } else { this.schedule(); }
  };

  Builder.prototype.reset = function () {
    this.tree = { type: "all", conditions: [defaults("event_count", this.catalog)] };
    this.changed();
  };

  Builder.prototype.write = function () {
    this.textarea.value = JSON.stringify(this.tree, null, 2);
    this.textarea.dispatchEvent(new Event("change", { bubbles: true }));
    this.schedule();
  };

  Builder.prototype.changed = function (rerender) {
    if (rerender !== false) { this.render(); }
    this.write();
  };

  Builder.prototype.schedule = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.check(); }, 400);
  };

  Builder.prototype.check = function () {
    if (!this.checkUrl || !window.fetch) { return; }
    var self = this, seq = ++this.seq;
    var token = d.querySelector("input[name=csrfmiddlewaretoken]");
    this.root.setAttribute("data-checking", "");
    window.fetch(this.checkUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.value : "" },
      body: JSON.stringify({ rule: this.tree })
    }).then(function (r) { return r.json(); }).then(function (data) {
      if (seq !== self.seq) { return; }  // a newer check is on its way
      self.root.removeAttribute("data-checking");
      self.show(data);
    }).catch(function () { self.root.removeAttribute("data-checking"); });
  };

  Builder.prototype.show = function (data) {
    this.description.textContent = data.description || "";
    if (data.estimate) {
      var e = data.estimate;
      this.estimate.textContent = "Estimated size: about " + e.estimate + " visitors (" + e.matched + " of " + e.sampled + " sampled profiles match" + (e.too_small ? "; too small to act on" : "") + ").";
      this.estimate.classList.toggle("rule-builder__estimate--small", !!e.too_small);
    } else {
      this.estimate.textContent = data.estimate_error || (data.error || "");
    }
    this.problemsBox.replaceChildren();
    this.root.querySelectorAll(".rule-builder__problem").forEach(function (n) { n.remove(); });
    this.root.querySelectorAll("[data-invalid]").forEach(function (n) { n.removeAttribute("data-invalid"); });
    var self = this;
    (data.problems || []).forEach(function (p) {
      self.problemsBox.appendChild(el("li", { text: (p.where ? p.where + ": " : "") + p.message }));
      self.markProblem(p.path, p.message);
    });
    this.root.setAttribute("data-valid", (data.problems || []).length ? "false" : "true");
  };

  // Find the drawn condition with the longest path that starts the problem's path; the rest
  // of the path names the field (window, min...).
  Builder.prototype.markProblem = function (path, message) {
    var best = null, bestLen = -1;
    this.treeBox.querySelectorAll("[data-path]").forEach(function (node) {
      var p = node.getAttribute("data-path");
      if ((p === "" || path === p || path.indexOf(p + ".") === 0) && p.length > bestLen) { best = node; bestLen = p.length; }
    });
    if (!best) { return; }
    var rest = path.slice(bestLen).replace(/^\./, "").split(".")[0];
    var field = rest ? best.querySelector(":scope > .rule-builder__fields [data-field='" + rest + "']") : null;
    if (field) { field.setAttribute("data-invalid", ""); field.setAttribute("aria-invalid", "true"); }
    best.setAttribute("data-invalid", "");
    var note = el("p", { "class": "rule-builder__problem error-message", role: "alert", text: message });
    best.insertBefore(note, best.children[1] || null);
  };

  Builder.prototype.render = function () {
    var self = this;
    this.treeBox.replaceChildren(this.node(this.tree, "", function (replacement) { self.tree = replacement; self.changed(); }, true));
  };

  // Draw one node. ``replace(newNode)`` swaps it in its parent (null removes it).
  Builder.prototype.node = function (node, path, replace, isRoot, unwrap) {
    var self = this;
    if (node && node.type === "not") {
      var inner = this.node(node.condition, path + (path ? "." : "") + "condition", function (child) {
        replace(child === null ? null : { type: "not", condition: child });
      }, isRoot, function () { replace(node.condition); });
      inner.classList.add("rule-builder__node--negated");
      var wrapper = el("div", { "class": "rule-builder__not", "data-path": path }, [el("span", { "class": "rule-builder__not-label", text: "NOT" }), inner]);
      return wrapper;
    }
    if (!node || typeof node !== "object") { node = defaults("event_count", this.catalog); }
    var isGroup = node.type === "all" || node.type === "any";
    var container = el("div", { "class": "rule-builder__node" + (isGroup ? " rule-builder__group" : " rule-builder__condition"), "data-path": path, "data-type": node.type });
    var typeOptions = (isGroup ? ["all", "any"] : LEAF_TYPES).map(function (t) { return [t, TYPE_LABELS[t] || t]; });
    if (!isGroup && LEAF_TYPES.indexOf(node.type) === -1) { typeOptions.unshift([node.type, "Unknown: " + node.type]); }
    var head = el("div", { "class": "rule-builder__head" }, [
      isGroup ? el("span", { text: "Visitors matching" }) : null,
      select(typeOptions, node.type, function (value) {
        if (isGroup) { node.type = value; self.changed(); } else { replace(defaults(value, self.catalog)); }
      }, isGroup ? "Group kind" : "Condition type"),
      isGroup ? el("span", { text: "of these conditions" }) : null,
      el("label", { "class": "rule-builder__negate" }, [
        el("input", { type: "checkbox", "data-negate": "", checked: !!unwrap, onchange: function () {
          if (unwrap) { unwrap(); } else { replace({ type: "not", condition: node }); }
        } }),
        d.createTextNode(" exclude (NOT)")
      ]),
      isRoot ? null : el("button", { type: "button", "class": "button button-small button-secondary no rule-builder__remove", text: "Remove", "aria-label": "Remove this condition", onclick: function () { replace(null); } })
    ]);
    container.appendChild(head);
    if (isGroup) {
      var list = el("ol", { "class": "rule-builder__children" });
      (node.conditions || []).forEach(function (child, i) {
        list.appendChild(el("li", {}, [self.node(child, path + (path ? "." : "") + "conditions[" + i + "]", function (replacement) {
          if (replacement === null) { node.conditions.splice(i, 1); } else { node.conditions[i] = replacement; }
          self.changed();
        }, false)]));
      });
      container.appendChild(list);
      var adder = select([["", "Add a condition…"]].concat(LEAF_TYPES.map(function (t) { return [t, TYPE_LABELS[t]]; })), "", function (value) {
        if (!value) { return; }
        node.conditions = (node.conditions || []).concat([defaults(value, self.catalog)]);
        self.changed();
      }, "Add a condition");
      adder.setAttribute("data-add-condition", "");
      container.appendChild(el("div", { "class": "rule-builder__actions" }, [
        adder,
        el("button", { type: "button", "class": "button button-small button-secondary", "data-add-group": "", text: "Add a group", onclick: function () {
          node.conditions = (node.conditions || []).concat([defaults("any", self.catalog)]);
          self.changed();
        } })
      ]));
    } else {
      container.appendChild(el("div", { "class": "rule-builder__fields" }, this.fields(node)));
      if (isRoot) {
        container.appendChild(el("button", { type: "button", "class": "button button-small button-secondary", text: "Combine with another condition", onclick: function () {
          replace({ type: "all", conditions: [node, defaults("event_count", self.catalog)] });
        } }));
      }
    }
    return container;
  };

  function field(name, label, control, hint) {
    control.setAttribute("data-field", name);
    return el("label", { "class": "rule-builder__field" }, [el("span", { text: label }), control, hint ? el("small", { text: hint }) : null]);
  }

  Builder.prototype.windowField = function (node, key, label, optional) {
    var self = this, parts = splitWindow(node[key]);
    var amount = input(parts.amount, function (v) { parts.amount = v; update(); }, { type: "number", min: "1", size: "5", "aria-label": label + " amount" });
    var unit = select(UNITS, parts.unit, function (v) { parts.unit = v; update(); }, label + " unit");
    function update() {
      if (optional && parts.amount === "") { delete node[key]; } else { node[key] = parts.amount + parts.unit; }
      self.changed(false);
    }
    var box = el("span", { "class": "rule-builder__window", "data-field": key }, [amount, unit]);
    return el("label", { "class": "rule-builder__field" }, [el("span", { text: label }), box]);
  };

  Builder.prototype.eventField = function (node, key, label) {
    var self = this;
    var listId = "rule-builder-events";
    if (!d.getElementById(listId)) {
      d.body.appendChild(el("datalist", { id: listId }, EVENTS.map(function (e) { return el("option", { value: e }); })));
    }
    return field(key, label, input(node[key], function (v) { node[key] = v; self.changed(false); }, { list: listId, size: "14" }));
  };

  Builder.prototype.comparison = function (node, kind) {
    var self = this, ops = (this.catalog.operators[kind] || []).map(function (o) { return [o, OP_LABELS[o] || o]; });
    var parts = [field("op", "comparison", select(ops, node.op, function (v) {
      node.op = v;
      if (v === "exists") { delete node.value; }
      else if ((v === "in" || v === "not_in") && !Array.isArray(node.value)) { node.value = node.value === undefined || node.value === "" ? [] : [node.value]; }
      else if (v !== "in" && v !== "not_in" && Array.isArray(node.value)) { node.value = node.value[0]; }
      self.changed();
    }, "Comparison"))];
    if (node.op !== "exists") {
      var isList = node.op === "in" || node.op === "not_in";
      var shown = isList ? (node.value || []).join(", ") : node.value;
      parts.push(field("value", isList ? "values (comma-separated)" : "value", input(shown, function (v) {
        if (isList) {
          node.value = v.split(",").map(function (s) { return s.trim(); }).filter(Boolean).map(function (s) { return kind === "number" ? toNumber(s) : s; });
        } else { node.value = kind === "number" ? toNumber(v) : v; }
        self.changed(false);
      }, { size: "12" })));
    }
    return parts;
  };

  Builder.prototype.fields = function (node) {
    var self = this, c = this.catalog;
    function set(key, convert) { return function (v) { var x = convert ? convert(v) : v; if (x === undefined || x === "") { delete node[key]; } else { node[key] = x; } self.changed(false); }; }
    switch (node.type) {
      case "event_count":
        var dims = [["", "any"]].concat(c.dimensions.map(function (x) { return [x, x.replace("_", " ")]; }));
        var flt = node.filter && typeof node.filter === "object" ? node.filter : {};
        var dim = Object.keys(flt)[0] || "";
        var out = [
          this.eventField(node, "event", "event"),
          field("min", "at least", input(node.min, set("min", toInt), { type: "number", min: "1", size: "5" })),
          field("max", "at most (optional)", input(node.max, set("max", toInt), { type: "number", min: "1", size: "5" })),
          this.windowField(node, "window", "in the last"),
          field("filter", "only where", select(dims, dim, function (v) {
            if (!v) { delete node.filter; } else { var o = {}; o[v] = flt[dim] || ""; node.filter = o; }
            self.changed();
          }, "Filter dimension"))
        ];
        if (dim) {
          out.push(field("filter_value", dim.replace("_", " ") + " is", input(flt[dim], function (v) { node.filter = {}; node.filter[dim] = v; self.changed(false); }, { size: "12" })));
        }
        return out;
      case "event_without":
        return [
          this.eventField(node, "event", "did"),
          this.eventField(node, "without", "and no"),
          this.windowField(node, "window", "in the last"),
          this.windowField(node, "min_age", "at least this long ago (optional)", true)
        ];
      case "feature":
        var feature = c.features.filter(function (f) { return f.name === node.feature; })[0];
        var list = [field("feature", "feature", select(c.features.map(function (f) { return [f.name, f.name.replace(/_/g, " ") + " (" + f.unit + ")"]; }), node.feature, function (v) {
          var f = c.features.filter(function (x) { return x.name === v; })[0];
          node.feature = v;
          delete node.param;
          if (f && (c.operators[f.kind] || []).indexOf(node.op) === -1) { node.op = f.kind === "number" ? "gte" : "eq"; }
          if (f && f.kind === "number" && typeof node.value !== "number") { node.value = 1; }
          if (f && f.kind === "string" && typeof node.value !== "string") { node.value = ""; }
          self.changed();
        }, "Feature"), feature ? feature.description : "")];
        if (feature && feature.param) { list.push(field("param", feature.param, input(node.param, set("param"), { size: "12" }))); }
        return list.concat(this.comparison(node, feature ? feature.kind : "number"));
      case "visited":
        var mode = node.path !== undefined ? "path" : "path_prefix";
        return [
          field("mode", "page", select([["path_prefix", "under the path"], ["path", "exactly the path"]], mode, function (v) {
            var value = node[mode] || "/";
            delete node.path; delete node.path_prefix; node[v] = value; self.changed();
          }, "Path match")),
          field(mode, "path", input(node[mode], set(mode), { size: "20" }))
        ];
      case "context":
        var attrs = c.context_attributes;
        return [field("attribute", "attribute", select(Object.keys(attrs), node.attribute, function (v) {
          node.attribute = v;
          if ((c.operators[attrs[v]] || []).indexOf(node.op) === -1) { node.op = "eq"; }
          node.value = attrs[v] === "number" ? 0 : "";
          self.changed();
        }, "Context attribute"))].concat(this.comparison(node, attrs[node.attribute] || "string"));
      case "model":
        var top = node.top_percent !== undefined;
        var parts = [
          field("model", "model (slug)", input(node.model, set("model"), { size: "14" })),
          field("mode", "select", select([["score", "by score"], ["top", "top percent"]], top ? "top" : "score", function (v) {
            if (v === "top") { delete node.op; delete node.value; node.top_percent = 10; }
            else { delete node.top_percent; node.op = "gte"; node.value = 0.5; }
            self.changed();
          }, "Model selection"))
        ];
        if (top) { parts.push(field("top_percent", "top %", input(node.top_percent, set("top_percent", toNumber), { type: "number", min: "0", max: "100", step: "any", size: "5" }))); }
        else {
          parts.push(field("op", "score", select([["gte", "≥"], ["gt", ">"], ["lte", "≤"], ["lt", "<"]], node.op, function (v) { node.op = v; self.changed(false); }, "Score comparison")));
          parts.push(field("value", "value (0-1)", input(node.value, set("value", toNumber), { type: "number", min: "0", max: "1", step: "any", size: "5" })));
        }
        return parts;
      case "cluster":
        return [
          field("model", "model (slug)", input(node.model, set("model"), { size: "14" })),
          field("cluster", "cluster", input(node.cluster, set("cluster"), { size: "8" }))
        ];
    }
    return [el("p", { text: "Edit this condition in the JSON below." })];
  };

  function init(scope) {
    (scope || d).querySelectorAll("[data-rule-builder]:not(.rule-builder--ready)").forEach(function (root) {
      try { root.ruleBuilder = new Builder(root); }
      catch (e) { if (window.console) { window.console.error("rule builder", e); } }
    });
  }

  if (d.readyState === "loading") { d.addEventListener("DOMContentLoaded", function () { init(); }); } else { init(); }
  // Forms drawn later (modals, dynamic panels) get their builder too.
  new MutationObserver(function () { init(); }).observe(d.documentElement, { childList: true, subtree: true });
  window.tailoredRuleBuilder = { init: init };
})();
