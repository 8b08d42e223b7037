/* Tailored rule builder: edits a segment's rule (a JSON condition tree) with clicks.
 *
 * Progressive enhancement of the widget's textarea (cms_blocks/widgets.py): without this
 * script the editor edits the JSON. With it, the tree is drawn as nestable groups of
 * conditions; every change rewrites the textarea, and (debounced) asks the admin's rule-check
 * endpoint for the rule in plain words, its estimated size and its problems, each shown next
 * to the condition it concerns. No dependencies, no build step, no inline script.
 *
 * What rules can say comes from the catalog the widget embeds (segments.api.rule_catalog): the
 * condition types with their labels, fields and a new node of each, the operators and their
 * labels, the units of a window. The editing controls of the built-in types are drawn here,
 * keyed by type; any other registered type gets controls drawn from its fields' kinds.
 */
(function () {
  "use strict";
  var d = document;

  var EMPTY_CATALOG = { conditions: [], features: [], operators: { number: [], string: [] }, operator_labels: {}, units: [] };

  // Index the catalog: entries by type, fields by name, the types a group offers.
  function readCatalog(data) {
    var c = Object.assign({}, EMPTY_CATALOG, data || {});
    c.byType = {};
    c.conditions.forEach(function (entry) {
      entry.fieldsByName = {};
      entry.fields.forEach(function (f) { entry.fieldsByName[f.name] = f; });
      c.byType[entry.type] = entry;
    });
    function ofRole(role) { return c.conditions.filter(function (e) { return e.role === role; }).map(function (e) { return e.type; }); }
    c.leafTypes = ofRole("condition");
    c.groupTypes = ofRole("group");
    return c;
  }

  // A field's choices as [value, label] pairs (plain values, or {value, label} objects).
  function choicePairs(choices) {
    return (choices || []).map(function (c) {
      return c !== null && typeof c === "object" ? [c.value, c.label === undefined ? String(c.value) : c.label] : [c, String(c)];
    });
  }

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
    this.catalog = readCatalog(catalogNode ? JSON.parse(catalogNode.textContent) : null);
    this.timer = null;
    this.seq = 0;
    var self = this;
    this.textarea.addEventListener("input", function () { self.fromText(false); });
    this.treeBox.hidden = false;
    this.raw.open = false;
    root.classList.add("rule-builder--ready");
    this.fromText(true);
  }

  Builder.prototype.entry = function (type) { return this.catalog.byType[type]; };

  // What the builder inserts for a new condition of a type (the catalog's "new" node).
  Builder.prototype.newNode = function (type) {
    var entry = this.entry(type);
    return entry ? JSON.parse(JSON.stringify(entry["new"])) : { type: type };
  };

  Builder.prototype.fieldInfo = function (type, name) {
    var entry = this.entry(type);
    return (entry && entry.fieldsByName[name]) || { name: name, label: name.replace(/_/g, " "), choices: [], suggestions: [] };
  };

  Builder.prototype.label = function (type, name) { return this.fieldInfo(type, name).label; };

  Builder.prototype.typeLabel = function (type) {
    var entry = this.entry(type);
    return entry ? entry.label : type;
  };

  Builder.prototype.fromText = function (initial) {
    var text = this.textarea.value.trim();
    var tree;
    if (!text || text === "null") { text = ""; tree = this.newNode("all"); }
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
    this.tree = this.newNode("all");
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
    var problems = data.problems || [];
    problems.forEach(function (p) {
      var item = el("li", { text: (p.where ? p.where + ": " : "") + p.message });
      // Wagtail counts ".error-message" for its error badges: one per problem, next to its
      // condition when it can be placed there, else here.
      if (!self.markProblem(p.path, p.message)) { item.classList.add("error-message"); }
      self.problemsBox.appendChild(item);
    });
    this.problemsBox.hidden = !problems.length;
    this.root.setAttribute("data-valid", problems.length ? "false" : "true");
  };

  // Find the drawn condition with the longest path that starts the problem's path; the rest
  // of the path names the field (window, min...).
  Builder.prototype.markProblem = function (path, message) {
    var best = null, bestLen = -1;
    this.treeBox.querySelectorAll("[data-path]").forEach(function (node) {
      var p = node.getAttribute("data-path");
      if ((p === "" || path === p || path.indexOf(p + ".") === 0) && p.length > bestLen) { best = node; bestLen = p.length; }
    });
    if (!best) { return false; }
    var rest = path.slice(bestLen).replace(/^\./, "").split(".")[0];
    var field = rest ? best.querySelector(":scope > .rule-builder__fields [data-field='" + rest + "']") : null;
    if (field) { field.setAttribute("data-invalid", ""); field.setAttribute("aria-invalid", "true"); }
    best.setAttribute("data-invalid", "");
    var note = el("p", { "class": "rule-builder__problem error-message", role: "alert", text: message });
    best.insertBefore(note, best.children[1] || null);
    return true;
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
    var c = this.catalog;
    if (!node || typeof node !== "object") { node = this.newNode("event_count"); }
    var isGroup = c.groupTypes.indexOf(node.type) !== -1;
    var container = el("div", { "class": "rule-builder__node" + (isGroup ? " rule-builder__group" : " rule-builder__condition"), "data-path": path, "data-type": node.type });
    var typeOptions = (isGroup ? c.groupTypes : c.leafTypes).map(function (t) { return [t, self.typeLabel(t)]; });
    if (!isGroup && c.leafTypes.indexOf(node.type) === -1) { typeOptions.unshift([node.type, "Unknown: " + node.type]); }
    var head = el("div", { "class": "rule-builder__head" }, [
      isGroup ? el("span", { text: "Visitors matching" }) : null,
      select(typeOptions, node.type, function (value) {
        if (isGroup) { node.type = value; self.changed(); } else { replace(self.newNode(value)); }
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
      var adder = select([["", "Add a condition…"]].concat(c.leafTypes.map(function (t) { return [t, self.typeLabel(t)]; })), "", function (value) {
        if (!value) { return; }
        node.conditions = (node.conditions || []).concat([self.newNode(value)]);
        self.changed();
      }, "Add a condition");
      adder.setAttribute("data-add-condition", "");
      container.appendChild(el("div", { "class": "rule-builder__actions" }, [
        adder,
        el("button", { type: "button", "class": "button button-small button-secondary", "data-add-group": "", text: "Add a group", onclick: function () {
          node.conditions = (node.conditions || []).concat([self.newNode("any")]);
          self.changed();
        } })
      ]));
    } else {
      container.appendChild(el("div", { "class": "rule-builder__fields" }, this.fields(node)));
      if (isRoot) {
        container.appendChild(el("button", { type: "button", "class": "button button-small button-secondary", text: "Combine with another condition", onclick: function () {
          replace({ type: "all", conditions: [node, self.newNode("event_count")] });
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
    var unit = select(this.catalog.units, parts.unit, function (v) { parts.unit = v; update(); }, label + " unit");
    function update() {
      if (optional && parts.amount === "") { delete node[key]; } else { node[key] = parts.amount + parts.unit; }
      self.changed(false);
    }
    var box = el("span", { "class": "rule-builder__window", "data-field": key }, [amount, unit]);
    return el("label", { "class": "rule-builder__field" }, [el("span", { text: label }), box]);
  };

  Builder.prototype.eventField = function (node, key, label) {
    var self = this;
    var listId = "rule-builder-suggestions-" + node.type + "-" + key;
    if (!d.getElementById(listId)) {
      d.body.appendChild(el("datalist", { id: listId }, this.fieldInfo(node.type, key).suggestions.map(function (e) { return el("option", { value: e }); })));
    }
    return field(key, label, input(node[key], function (v) { node[key] = v; self.changed(false); }, { list: listId, size: "14" }));
  };

  Builder.prototype.comparison = function (node, kind) {
    var labels = this.catalog.operator_labels;
    var self = this, ops = (this.catalog.operators[kind] || []).map(function (o) { return [o, labels[o] || o]; });
    var parts = [field("op", this.label(node.type, "op"), select(ops, node.op, function (v) {
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
        var dims = [["", "any"]].concat(this.fieldInfo("event_count", "filter").choices.map(function (x) { return [x, x.replace("_", " ")]; }));
        var flt = node.filter && typeof node.filter === "object" ? node.filter : {};
        var dim = Object.keys(flt)[0] || "";
        var out = [
          this.eventField(node, "event", this.label("event_count", "event")),
          field("min", this.label("event_count", "min"), input(node.min, set("min", toInt), { type: "number", min: "1", size: "5" })),
          field("max", this.label("event_count", "max"), input(node.max, set("max", toInt), { type: "number", min: "1", size: "5" })),
          this.windowField(node, "window", this.label("event_count", "window")),
          field("filter", this.label("event_count", "filter"), select(dims, dim, function (v) {
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
          this.eventField(node, "event", this.label("event_without", "event")),
          this.eventField(node, "without", this.label("event_without", "without")),
          this.windowField(node, "window", this.label("event_without", "window")),
          this.windowField(node, "min_age", this.label("event_without", "min_age"), true)
        ];
      case "feature":
        var feature = c.features.filter(function (f) { return f.name === node.feature; })[0];
        var list = [field("feature", this.label("feature", "feature"), select(c.features.map(function (f) { return [f.name, f.name.replace(/_/g, " ") + " (" + f.unit + ")"]; }), node.feature, function (v) {
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
          field("mode", "page", select([["path_prefix", this.label("visited", "path_prefix")], ["path", this.label("visited", "path")]], mode, function (v) {
            var value = node[mode] || "/";
            delete node.path; delete node.path_prefix; node[v] = value; self.changed();
          }, "Path match")),
          field(mode, "path", input(node[mode], set(mode), { size: "20" }))
        ];
      case "context":
        var attrs = {}, attribute = this.fieldInfo("context", "attribute");
        attribute.choices.forEach(function (choice) { attrs[choice.value] = choice.kind; });
        return [field("attribute", attribute.label, select(choicePairs(attribute.choices), node.attribute, function (v) {
          node.attribute = v;
          if ((c.operators[attrs[v]] || []).indexOf(node.op) === -1) { node.op = "eq"; }
          node.value = attrs[v] === "number" ? 0 : "";
          self.changed();
        }, "Context attribute"))].concat(this.comparison(node, attrs[node.attribute] || "string"));
      case "model":
        var top = node.top_percent !== undefined;
        var parts = [
          field("model", this.label("model", "model"), input(node.model, set("model"), { size: "14" })),
          field("mode", "select", select([["score", "by score"], ["top", "top percent"]], top ? "top" : "score", function (v) {
            if (v === "top") { delete node.op; delete node.value; node.top_percent = 10; }
            else { delete node.top_percent; node.op = "gte"; node.value = 0.5; }
            self.changed();
          }, "Model selection"))
        ];
        if (top) { parts.push(field("top_percent", this.label("model", "top_percent"), input(node.top_percent, set("top_percent", toNumber), { type: "number", min: "0", max: "100", step: "any", size: "5" }))); }
        else {
          var scoreOps = this.fieldInfo("model", "op").choices.map(function (o) { return [o, c.operator_labels[o] || o]; });
          parts.push(field("op", this.label("model", "op"), select(scoreOps, node.op, function (v) { node.op = v; self.changed(false); }, "Score comparison")));
          parts.push(field("value", this.label("model", "value"), input(node.value, set("value", toNumber), { type: "number", min: "0", max: "1", step: "any", size: "5" })));
        }
        return parts;
      case "cluster":
        return [
          field("model", this.label("cluster", "model"), input(node.model, set("model"), { size: "14" })),
          field("cluster", this.label("cluster", "cluster"), input(node.cluster, set("cluster"), { size: "8" }))
        ];
    }
    return this.genericFields(node);
  };

  // Controls for a type without its own (a site's condition type), from its fields' kinds.
  Builder.prototype.genericFields = function (node) {
    var self = this, entry = this.entry(node.type), out = [], rest = false;
    if (!entry) { return [el("p", { text: "Edit this condition in the JSON below." })]; }
    function setter(name, convert) {
      return function (v) { var x = convert ? convert(v) : v; if (x === undefined || x === "") { delete node[name]; } else { node[name] = x; } self.changed(false); };
    }
    entry.fields.forEach(function (f) {
      var pairs = choicePairs(f.choices);
      function byIndex(i) { return i === "" ? undefined : pairs[Number(i)][0]; }
      function indexOf(value) { for (var i = 0; i < pairs.length; i++) { if (pairs[i][0] === value) { return i; } } return ""; }
      switch (f.kind) {
        case "event": out.push(self.eventField(node, f.name, f.label)); break;
        case "window": out.push(self.windowField(node, f.name, f.label, !f.required)); break;
        case "integer": out.push(field(f.name, f.label, input(node[f.name], setter(f.name, toInt), { type: "number", size: "5" }), f.help)); break;
        case "number": out.push(field(f.name, f.label, input(node[f.name], setter(f.name, toNumber), { type: "number", step: "any", size: "5" }), f.help)); break;
        case "text": case "slug": case "path": out.push(field(f.name, f.label, input(node[f.name], setter(f.name), { size: "14" }), f.help)); break;
        case "choice":
          out.push(field(f.name, f.label, select([["", "…"]].concat(pairs.map(function (p, i) { return [i, p[1]]; })), indexOf(node[f.name]), function (i) { setter(f.name)(byIndex(i)); }, f.label), f.help));
          break;
        case "operator":
          // an op + value comparison (its choices: the operators it takes, of one kind)
          var kind = (f.choices || []).indexOf("lt") !== -1 ? "number" : "string";
          out = out.concat(self.comparison(node, kind));
          break;
        case "value": break;  // drawn with its operator
        case "choices":
          var many = el("select", { multiple: true, "aria-label": f.label, onchange: function () {
            node[f.name] = Array.prototype.filter.call(many.options, function (o) { return o.selected; }).map(function (o) { return byIndex(o.value); });
            self.changed(false);
          } });
          pairs.forEach(function (p, i) {
            var opt = el("option", { value: String(i), text: p[1] });
            opt.selected = Array.isArray(node[f.name]) && node[f.name].indexOf(p[0]) !== -1;
            many.appendChild(opt);
          });
          out.push(field(f.name, f.label, many, f.help));
          break;
        default: rest = true;
      }
    });
    if (rest) { out.push(el("p", { text: "Edit the rest of this condition in the JSON below." })); }
    return out;
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
