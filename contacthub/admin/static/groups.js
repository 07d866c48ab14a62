// contacthub admin: the condition builder of the group form (contacthub/admin/groups.py).
//
// The page works without this script: the conditions are JSON in a text area, and a button
// counts the matching contacts. With it, the text area folds away behind a form-based tree
// editor (rules and nested all / any / none groups) that writes the same JSON back into it,
// and the number of matching contacts is asked of the hub (POST /admin/groups/preview, with
// the form's CSRF token) a moment after each change.
"use strict";

(() => {
  const DEBOUNCE_MS = 350;
  const TEXT_OPS = [
    ["contains", "contains"], ["equals", "is"], ["starts_with", "starts with"],
    ["ends_with", "ends with"], ["in", "is one of"], ["is_empty", "is empty"],
  ];
  const CODE_OPS = [["equals", "is"], ["in", "is one of"], ["is_empty", "is empty"]];
  const DATE_OPS = [
    ["within_days", "within the last … days"], ["before", "before"], ["after", "after"],
    ["is_empty", "is empty"],
  ];
  const GROUP_OPS = [
    ["all", "All of these are true"], ["any", "Any of these is true"],
    ["none", "None of these is true"], ["notall", "Not all of these are true"],
  ];
  const KINDS = [
    ["field", "Contact field"], ["consent", "Consent"], ["activity", "Activity"],
    ["email", "Email"], ["group", "Group membership"],
  ];
  const CONSENT_STATES = [["agreed", "agreed"], ["revoked", "revoked"], ["never", "never answered"]];
  const EMAIL_ACTIONS = [
    ["opened", "opened"], ["clicked", "clicked in"], ["subscribed", "is subscribed to"],
    ["unsubscribed", "unsubscribed from"],
  ];

  let options = {};
  let textarea = null;
  let builder = null;
  let output = null;
  let previewUrl = "";
  let csrfToken = "";
  let rootWrapped = false;
  let timer = null;
  let asked = 0;

  // -- small DOM helpers -------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function select(pairs, value, blank) {
    const node = el("select");
    if (blank !== undefined) node.append(el("option", { value: "", text: blank }));
    for (const [optionValue, label] of pairs) {
      node.append(el("option", { value: optionValue, text: label }));
    }
    // A stored value the hub no longer offers stays, so that the hub can name the fault.
    if (value !== undefined && value !== null && value !== "" &&
        !pairs.some(([optionValue]) => String(optionValue) === String(value))) {
      node.append(el("option", { value: value, text: `${value} (unknown)` }));
    }
    if (value !== undefined && value !== null) node.value = String(value);
    return node;
  }

  function input(type, value, attrs) {
    const node = el("input", { type: type, ...(attrs || {}) });
    if (value !== undefined && value !== null) node.value = String(value);
    return node;
  }

  // A control with its visible label, tied by id (a wrapping label would add the selected
  // option's text to the control's name).
  let controls = 0;
  function control(label, widget, className) {
    controls += 1;
    widget.id = `b-control-${controls}`;
    return el("div", { className: `b-control${className ? " " + className : ""}` },
      el("label", { className: "b-label", for: widget.id, text: label }), widget);
  }

  function number(text) {
    const value = Number(text);
    return text.trim() !== "" && Number.isInteger(value) ? value : text.trim();
  }

  function pairsOf(names) { return names.map((name) => [name, name]); }

  // -- rules -------------------------------------------------------------------------------

  function kindOf(node) {
    if (node === null || typeof node !== "object" || Array.isArray(node)) return "raw";
    for (const kind of ["field", "consent", "activity", "email", "group"]) {
      if (kind in node) return kind;
    }
    if ("all" in node || "any" in node || "not" in node) return "node";
    return "raw";
  }

  function fieldType(name) {
    if (options.code_fields.some(([field]) => field === name)) return "code";
    if (options.date_fields.some(([field]) => field === name)) return "date";
    return "text";
  }

  function defaultRule(kind) {
    if (kind === "consent") {
      return { consent: options.consents.length ? options.consents[0][0] : "", state: "agreed" };
    }
    if (kind === "activity") return { activity: "pagevisit" };
    if (kind === "email") {
      return { email: "opened", newsletter: options.newsletters[0] || "" };
    }
    if (kind === "group") return { group: options.groups[0] || "" };
    return { field: "email", op: "contains", value: "" };
  }

  // Each editor fills `body` and answers a function that reads the rule's JSON back.
  const EDITORS = {
    field(body, rule) {
      const fields = el("select");
      const groups = [
        ["Text", options.text_fields], ["Codes", options.code_fields],
        ["Dates", options.date_fields],
      ];
      for (const [label, pairs] of groups) {
        const group = el("optgroup", { label: label });
        for (const [value, text] of pairs) group.append(el("option", { value: value, text: text }));
        fields.append(group);
      }
      fields.value = rule.field;
      if (fields.value !== rule.field) fields.append(el("option", { value: rule.field, text: rule.field }));
      fields.value = rule.field;
      const opHolder = el("span", { className: "b-slot" });
      const valueHolder = el("span", { className: "b-slot b-grow" });
      let op = null;
      let read = () => undefined;

      function valueEditor(type, operator, value) {
        valueHolder.replaceChildren();
        if (operator === "is_empty") { read = () => undefined; return; }
        if (type === "date") {
          if (operator === "within_days") {
            const days = input("number", value ?? 30, { min: 1, step: 1 });
            valueHolder.append(control("Days", days));
            read = () => number(days.value);
          } else {
            const day = input("date", value ?? "");
            valueHolder.append(control("Date", day));
            read = () => day.value;
          }
          return;
        }
        if (type === "code") {
          const pairs = fields.value === "country" ? options.countries : options.states;
          const choice = select(pairs.map(([code, name]) => [code, `${name} (${code})`]),
            operator === "in" ? undefined : value);
          if (operator === "in") {
            choice.multiple = true;
            choice.size = 5;
            const chosen = new Set(Array.isArray(value) ? value.map(String) : []);
            for (const option of choice.options) option.selected = chosen.has(option.value);
            valueHolder.append(control("Values", choice));
            read = () => Array.from(choice.selectedOptions, (option) => option.value);
          } else {
            valueHolder.append(control("Value", choice));
            read = () => choice.value;
          }
          return;
        }
        if (operator === "in") {
          const list = input("text", Array.isArray(value) ? value.join(", ") : (value ?? ""),
            { placeholder: "separated by commas" });
          valueHolder.append(control("Values", list));
          read = () => list.value.split(",").map((item) => item.trim()).filter(Boolean);
          return;
        }
        const text = input("text", Array.isArray(value) ? value.join(", ") : (value ?? ""));
        valueHolder.append(control("Value", text));
        read = () => text.value;
      }

      function opEditor(operator, value) {
        const type = fieldType(fields.value);
        const ops = type === "code" ? CODE_OPS : type === "date" ? DATE_OPS : TEXT_OPS;
        const chosen = ops.some(([name]) => name === operator) ? operator : ops[0][0];
        op = select(ops, chosen);
        opHolder.replaceChildren(control("Test", op));
        valueEditor(type, chosen, chosen === operator ? value : undefined);
        op.addEventListener("change", () => valueEditor(type, op.value, undefined));
      }

      fields.addEventListener("change", () => opEditor(op.value, undefined));
      opEditor(rule.op, rule.value);
      body.append(control("Field", fields), opHolder, valueHolder);
      return () => {
        const out = { field: fields.value, op: op.value };
        const value = read();
        if (value !== undefined) out.value = value;
        return out;
      };
    },

    consent(body, rule) {
      const consent = select(
        options.consents.map(([code, name]) => [code, name === code ? code : `${name} (${code})`]),
        rule.consent);
      const state = select(CONSENT_STATES, rule.state || "agreed");
      const revisionHolder = el("span", { className: "b-slot" });
      let revision = null;
      function revisionEditor(value) {
        revisionHolder.replaceChildren();
        revision = null;
        if (state.value !== "agreed") return;
        const found = options.consents.find(([code]) => code === consent.value);
        const current = found ? found[2] : 0;
        const pairs = [];
        for (let number = current; number >= 1; number -= 1) pairs.push([String(number), `revision ${number}`]);
        revision = select(pairs, value, "any revision");
        revisionHolder.append(control("To", revision));
      }
      consent.addEventListener("change", () => revisionEditor(undefined));
      state.addEventListener("change", () => revisionEditor(undefined));
      revisionEditor(rule.revision);
      body.append(control("Consent", consent), control("State", state), revisionHolder);
      return () => {
        const out = { consent: consent.value, state: state.value };
        if (revision && revision.value) out.revision = number(revision.value);
        return out;
      };
    },

    activity(body, rule) {
      const type = select(options.activity_types, rule.activity);
      const channel = select(pairsOf(options.channels), rule.channel ?? "", "any channel");
      const url = input("text", rule.url_contains ?? "", { placeholder: "e.g. /pricing" });
      const value = input("text", rule.value_equals ?? "");
      const atLeast = input("number", rule.at_least ?? 1, { min: 1, step: 1 });
      const when = select([["any", "any time"], ["within", "in the last … days"], ["between", "between dates"]],
        "between" in rule ? "between" : "within_days" in rule ? "within" : "any");
      const whenHolder = el("span", { className: "b-slot b-grow" });
      let readWhen = () => ({});
      function whenEditor() {
        whenHolder.replaceChildren();
        if (when.value === "within") {
          const days = input("number", rule.within_days ?? 30, { min: 1, step: 1 });
          whenHolder.append(control("Days", days));
          readWhen = () => ({ within_days: number(days.value) });
        } else if (when.value === "between") {
          const [start, end] = Array.isArray(rule.between) ? rule.between : ["", ""];
          const from = input("date", start);
          const to = input("date", end);
          whenHolder.append(control("From", from), control("To", to));
          readWhen = () => ({ between: [from.value, to.value] });
        } else {
          readWhen = () => ({});
        }
      }
      when.addEventListener("change", whenEditor);
      whenEditor();
      body.append(
        control("Type", type), control("Channel", channel),
        control("URL contains", url, "b-grow"), control("Value is", value),
        control("At least (times)", atLeast, "b-small"), control("When", when), whenHolder);
      return () => {
        const out = { activity: type.value };
        if (url.value.trim()) out.url_contains = url.value.trim();
        if (value.value.trim()) out.value_equals = value.value.trim();
        if (channel.value) out.channel = channel.value;
        const times = number(atLeast.value);
        if (times !== 1 && times !== "") out.at_least = times;
        return { ...out, ...readWhen() };
      };
    },

    email(body, rule) {
      const action = select(EMAIL_ACTIONS, rule.email || "opened");
      const newsletter = select(pairsOf(options.newsletters), rule.newsletter);
      const issueHolder = el("span", { className: "b-slot b-grow" });
      const human = input("checkbox", null);
      human.checked = rule.human_only !== false;
      const humanControl = el("label", { className: "b-check" }, human,
        document.createTextNode(" people only (not privacy proxies or link scanners)"));
      const days = input("number", rule.within_days ?? "", { min: 1, step: 1, placeholder: "any time" });
      let issue = null;
      const daysControl = control("In the last … days", days, "b-small");
      // Per the language: an issue with opened, clicked and unsubscribed (through its link);
      // people only with opened and clicked; a window with all but subscribed.
      function issueEditor(value) {
        issueHolder.replaceChildren();
        issue = null;
        const engagement = action.value === "opened" || action.value === "clicked";
        humanControl.hidden = !engagement;
        daysControl.hidden = action.value === "subscribed";
        if (action.value === "subscribed") return;
        const issues = (options.issues[newsletter.value] || []);
        issue = select(issues, value, "any issue");
        issueHolder.append(control("Issue", issue));
      }
      action.addEventListener("change", () => issueEditor(issue ? issue.value : undefined));
      newsletter.addEventListener("change", () => issueEditor(undefined));
      body.append(control("Contact", action), control("Newsletter", newsletter), issueHolder,
        daysControl, humanControl);
      issueEditor(rule.issue);
      return () => {
        const out = { email: action.value, newsletter: newsletter.value };
        if (issue && issue.value) out.issue = issue.value;
        if (!humanControl.hidden && !human.checked) out.human_only = false;
        if (!daysControl.hidden && days.value.trim()) out.within_days = number(days.value);
        return out;
      };
    },

    group(body, rule) {
      const group = select(pairsOf(options.groups), rule.group, options.groups.length ? undefined : "no other group yet");
      body.append(control("Is a member of", group, "b-grow"));
      return () => ({ group: group.value });
    },
  };

  function removeButton(label) {
    return el("button", { type: "button", className: "button secondary small b-remove", "data-action": "remove", text: label });
  }

  function renderRule(rule) {
    const kind = kindOf(rule);
    const box = el("li", { className: "b-rule", "data-kind": kind });
    if (kind === "raw") {
      // A node this builder cannot edit (written through the API): kept as it is.
      box.append(el("div", { className: "b-head" },
        el("span", { className: "b-label", text: "Condition written as JSON" }), removeButton("Remove")),
        el("pre", { className: "source", text: JSON.stringify(rule, null, 2) }));
      box.readNode = () => rule;
      return box;
    }
    const kindSelect = select(KINDS, kind);
    kindSelect.classList.add("b-kind");
    const body = el("div", { className: "b-body" });
    box.append(el("div", { className: "b-head" }, control("Rule", kindSelect), removeButton("Remove")), body);
    box.readNode = EDITORS[kind](body, rule);
    kindSelect.addEventListener("change", () => {
      box.replaceWith(renderRule(defaultRule(kindSelect.value)));
      changed();
    });
    return box;
  }

  // -- groups (all / any / none / not all) -------------------------------------------------

  function groupOf(node) {
    if ("all" in node && Array.isArray(node.all)) return ["all", node.all];
    if ("any" in node && Array.isArray(node.any)) return ["any", node.any];
    const inner = node.not;
    if (inner && typeof inner === "object" && !Array.isArray(inner)) {
      if (Array.isArray(inner.any) && Object.keys(inner).length === 1) return ["none", inner.any];
      if (Array.isArray(inner.all) && Object.keys(inner).length === 1) return ["notall", inner.all];
    }
    return ["none", [inner]];
  }

  function renderNode(node, root) {
    return kindOf(node) === "node" && Object.keys(node).length === 1 ? renderGroup(node, root) : renderRule(node);
  }

  function renderGroup(node, root) {
    const [op, children] = groupOf(node);
    const box = el(root ? "div" : "li", { className: `b-group${root ? " b-root" : ""}` });
    const opSelect = select(GROUP_OPS, op);
    const list = el("ul", { className: "b-children" });
    for (const child of children) list.append(renderNode(child, false));
    const head = el("div", { className: "b-head" }, control(root ? "Members are contacts for whom" : "Group of rules", opSelect));
    if (!root) head.append(removeButton("Remove group"));
    const add = el("div", { className: "b-add" },
      el("button", { type: "button", className: "button secondary small", "data-action": "add-rule", text: "+ Rule" }),
      el("button", { type: "button", className: "button secondary small", "data-action": "add-group", text: "+ Group of rules" }));
    box.append(head, list, add);
    box.readNode = (path, paths) => {
      const kids = (prefix) => Array.from(list.children, (child, index) => read(child, `${prefix}[${index}]`, paths));
      const value = opSelect.value;
      if (value === "all") return { all: kids(`${path}.all`) };
      if (value === "any") return { any: kids(`${path}.any`) };
      if (value === "notall") return { not: { all: kids(`${path}.not.all`) } };
      if (list.children.length === 1) return { not: read(list.children[0], `${path}.not`, paths) };
      return { not: { any: kids(`${path}.not.any`) } };
    };
    box.addTo = (child) => { list.append(child); };
    return box;
  }

  // The JSON of a builder element; `paths` maps each element to the JSON path of its node.
  function read(element, path, paths) {
    paths.set(element, path);
    return element.readNode(path, paths);
  }

  function tree() {
    const paths = new Map();
    const root = builder.firstElementChild;
    let value = read(root, "conditions", paths);
    if (rootWrapped && value.all && value.all.length === 1) {
      value = value.all[0];
      paths.set(root.querySelector(".b-children").firstElementChild, "conditions");
    }
    return { value, paths };
  }

  function load(conditions) {
    const wrap = !(kindOf(conditions) === "node" && Object.keys(conditions).length === 1 &&
      ("all" in conditions || "any" in conditions));
    rootWrapped = wrap;
    builder.replaceChildren(renderGroup(wrap ? { all: [conditions] } : conditions, true));
  }

  // -- showing faults and the count --------------------------------------------------------

  function clearFaults() {
    for (const node of builder.querySelectorAll(".b-invalid")) node.classList.remove("b-invalid");
    for (const node of builder.querySelectorAll(".b-fault")) node.remove();
  }

  // The message by the builder element whose path is the longest prefix of the fault's path.
  function showFault(path, message) {
    clearFaults();
    if (!path) return;
    const { paths } = tree();
    let best = null;
    let bestLength = -1;
    for (const [element, elementPath] of paths) {
      const fits = path === elementPath || path.startsWith(elementPath + ".") || path.startsWith(elementPath + "[");
      if (fits && elementPath.length > bestLength) { best = element; bestLength = elementPath.length; }
    }
    if (!best) return;
    best.classList.add("b-invalid");
    if (message) {
      const head = best.querySelector(".b-head");
      head.after(el("div", { className: "error b-fault", role: "alert", text: message }));
    }
  }

  function say(text, kind) {
    output.textContent = text;
    output.dataset.state = kind;
  }

  async function preview(json) {
    const mine = ++asked;
    say("Counting…", "busy");
    const body = new URLSearchParams({ csrf_token: csrfToken, conditions: json });
    let answer = null;
    let data = null;
    try {
      answer = await fetch(previewUrl, {
        method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" },
      });
      data = answer.headers.get("content-type")?.startsWith("application/json") ? await answer.json() : null;
    } catch (error) {
      if (mine === asked) say("The count is not available (the hub did not answer).", "error");
      return;
    }
    if (mine !== asked) return;  // a later change was sent since
    if (answer.ok && data && typeof data.count === "number") {
      clearFaults();
      say(`${data.count.toLocaleString("en-US")} ${data.count === 1 ? "contact matches" : "contacts match"} now.`, "ok");
    } else if (data && data.error) {
      say(data.error, "error");
      showFault(data.path, data.error);
    } else if (answer.status === 403) {
      say("This page has expired: reload it to count again.", "error");
    } else {
      say(`The count is not available (the hub answered ${answer.status}).`, "error");
    }
  }

  function changed() {
    const json = JSON.stringify(tree().value, null, 2);
    textarea.value = json;
    clearTimeout(timer);
    timer = setTimeout(() => preview(json), DEBOUNCE_MS);
  }

  // -- wiring ------------------------------------------------------------------------------

  function showFor(kind, section) { section.hidden = kind === "static"; }

  document.addEventListener("DOMContentLoaded", () => {
    const data = document.getElementById("builder-data");
    builder = document.getElementById("builder");
    textarea = document.getElementById("f-conditions");
    output = document.getElementById("preview-count");
    if (!data || !builder || !textarea || !output) return;
    const config = JSON.parse(data.textContent);
    options = config.options;
    previewUrl = config.preview;
    const form = builder.closest("form");
    csrfToken = form.querySelector("input[name=csrf_token]").value;
    const section = document.getElementById("conditions");
    for (const radio of form.querySelectorAll("input[name=kind]")) {
      radio.addEventListener("change", () => showFor(radio.value, section));
      if (radio.checked) showFor(radio.value, section);
    }

    let conditions;
    try {
      conditions = JSON.parse(textarea.value || '{"all": []}');
    } catch (error) {
      return;  // JSON the builder cannot read: the text area stays, with the hub's message
    }
    load(conditions);
    builder.hidden = false;
    document.getElementById("json-conditions").open = false;
    for (const button of form.querySelectorAll(".count-button")) button.hidden = true;
    if (config.error_path) {
      const message = document.getElementById("e-conditions");
      showFault(config.error_path, message ? null : "");
    }

    builder.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const action = button.dataset.action;
      const group = button.closest(".b-group");
      if (action === "add-rule") group.addTo(renderRule(defaultRule("field")));
      else if (action === "add-group") group.addTo(renderGroup({ any: [defaultRule("field")] }, false));
      else if (action === "remove") button.closest(".b-rule, .b-group").remove();
      changed();
    });
    builder.addEventListener("input", changed);
    builder.addEventListener("change", changed);
    // JSON typed or pasted by hand is taken into the builder when it reads.
    textarea.addEventListener("change", () => {
      try {
        load(JSON.parse(textarea.value));
      } catch (error) {
        say("The JSON does not read: fix it, or use the builder.", "error");
        return;
      }
      changed();
    });
    changed();
  });
})();
