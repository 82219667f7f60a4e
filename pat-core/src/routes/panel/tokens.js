"use strict";
(function () {
  // Resolved against the origin, which never holds credentials: a page
  // reached with user:token@ in its address must not put them in a request URL.
  const api = new URL(document.querySelector('meta[name="pat-api"]').content, window.location.origin).href;
  const $ = (id) => document.getElementById(id);
  const state = { principal: null, user: null };

  function showError(message) {
    $("error").textContent = message || "";
  }

  async function call(method, path, body) {
    const init = { method, credentials: "same-origin", cache: "no-store", headers: { accept: "application/json" } };
    if (method !== "GET") init.headers["x-pat-csrf"] = "1";
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(api + path, init);
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) {
      throw new Error((data && data.error_description) || ("the server answered " + response.status));
    }
    return data;
  }

  function when(iso) {
    if (!iso) return "never";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function seconds(n) {
    const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    for (const [u, k] of units) if (n % k === 0) return (n / k) + u;
    return n + "s";
  }

  function model(t) {
    if (t.expiry === "sliding") {
      let m = "Auto-refresh " + seconds(t.auto_refresh_seconds);
      if (t.max_lifetime_seconds) m += ", at most " + seconds(t.max_lifetime_seconds);
      return m;
    }
    return "Hard limit";
  }

  function cell(row, label, text, cls) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function render(list) {
    state.principal = list.principal;
    state.user = list.user;
    $("who").textContent = "Signed in as " + list.principal.user + (list.principal.admin ? " (admin)" : "") +
      ". Tokens of " + list.user + ".";
    $("picker").hidden = !list.principal.admin;
    // No secret: the prefix says whose a token is, as scanners read it.
    const [current, ...former] = list.prefixes;
    $("prefix").textContent = "This service's tokens start with " + current + "_" +
      (former.length ? " (older ones with " + former.map((p) => p + "_").join(", ") + ")" : "") + ".";
    renderPermissions(list.permissions || []);
    const body = $("tokens");
    body.replaceChildren();
    for (const t of list.tokens) {
      const row = document.createElement("tr");
      row.dataset.id = t.id;
      cell(row, "Label", t.label, "label");
      cell(row, "Expiry model", model(t));
      const exp = cell(row, "Expires", when(t.expires_at));
      exp.title = t.expires_at;
      cell(row, "Last used", when(t.last_used_at));
      cell(row, "Scopes", t.scopes.length ? t.scopes.join(" ") : "all (unrestricted)", "scopes");
      const status = cell(row, "Status", t.status, "status status-" + t.status);
      const notes = [];
      if (t.previous_secret_until) notes.push("old secret works until " + when(t.previous_secret_until));
      if (t.parent) {
        const parent = list.tokens.find((p) => p.id === t.parent);
        notes.push("made with " + (parent ? "\u201c" + parent.label + "\u201d" : "token " + t.parent));
      }
      if (t.descendants) notes.push(t.descendants + (t.descendants === 1 ? " token" : " tokens") + " made with it");
      const metadata = Object.entries(t.meta || {}).map(([k, v]) => k + "=" + v).join(" ");
      if (metadata) notes.push(metadata);
      if (t.allow_from && t.allow_from.length) notes.push("from " + t.allow_from.join(", "));
      if (t.rate) notes.push("at most " + t.rate);
      if (t.max_uses) notes.push(t.uses + " of " + t.max_uses + " uses");
      if (t.last_addresses && t.last_addresses.length) {
        notes.push("last from " + t.last_addresses.map((s) => s.address).join(", "));
      }
      if (t.disabled_by && t.disabled_by !== t.id) {
        const by = list.tokens.find((p) => p.id === t.disabled_by);
        notes.push("disabled with " + (by ? "\u201c" + by.label + "\u201d" : "token " + t.disabled_by));
      }
      for (const n of notes) {
        const note = document.createElement("span");
        note.className = "hint note";
        note.textContent = n;
        status.appendChild(document.createElement("br"));
        status.appendChild(note);
      }
      const actions = cell(row, "Actions", "");
      // Enabling is an admin's alone (a disabling may be an admin's), and
      // a token disabled with another is enabled with that one.
      if (!t.disabled) {
        actions.appendChild(button("Disable", "secondary disable", "Disable token " + t.label, () => suspend(t, "disable")));
      } else if (list.principal.admin && t.disabled_by === t.id) {
        actions.appendChild(button("Enable", "secondary enable", "Enable token " + t.label, () => suspend(t, "enable")));
      }
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "danger revoke";
      revoke.textContent = "Revoke";
      revoke.setAttribute("aria-label", "Revoke token " + t.label);
      revoke.addEventListener("click", () => revokeToken(t));
      actions.appendChild(revoke);
      body.appendChild(row);
    }
    $("empty").hidden = list.tokens.length !== 0;
  }

  // The catalog as checkboxes, with descriptions, as GitHub's token page
  // offers its scopes; kept checked across reloads of the list.
  function renderPermissions(permissions) {
    const box = $("permission-list");
    const checked = new Set(Array.from(box.querySelectorAll("input:checked"), (i) => i.value));
    box.replaceChildren();
    for (const p of permissions) {
      const label = document.createElement("label");
      label.className = "permission";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "permission";
      input.value = p.name;
      input.checked = checked.has(p.name);
      const name = document.createElement("code");
      name.textContent = p.name;
      label.append(input, " ", name);
      const about = [p.description, p.implies.length ? "includes " + p.implies.join(", ") : ""]
        .filter(Boolean).join("; ");
      if (about) {
        const hint = document.createElement("span");
        hint.className = "hint";
        hint.textContent = " " + about;
        label.appendChild(hint);
      }
      box.appendChild(label);
    }
    $("permissions").hidden = permissions.length === 0;
  }

  async function load() {
    const query = state.user && state.principal && state.user !== state.principal.user
      ? "?user=" + encodeURIComponent(state.user) : "";
    render(await call("GET", query));
  }

  function button(text, cls, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  async function suspend(t, action) {
    if (action === "disable") {
      const more = t.descendants ? " and the tokens made with it" : "";
      const undo = state.principal.admin ? "" : " Only an admin can enable it again.";
      if (!window.confirm("Disable the token \u201c" + t.label + "\u201d" + more +
        "? Anything using it is refused until it is enabled." + undo)) return;
    }
    showError("");
    try {
      await call("POST", "/" + encodeURIComponent(t.id) + "/" + action);
      await load();
      $("heading").focus();
    } catch (e) { showError(e.message); }
  }

  async function revokeToken(t) {
    const more = t.descendants
      ? " It also revokes the " + (t.descendants === 1 ? "token" : t.descendants + " tokens") + " made with it."
      : "";
    if (!window.confirm("Revoke the token \u201c" + t.label + "\u201d?" + more + " Anything using " +
      (t.descendants ? "them" : "it") + " stops working at once.")) return;
    showError("");
    try {
      await call("DELETE", "/" + encodeURIComponent(t.id));
      await load();
      $("heading").focus();
    } catch (e) { showError(e.message); }
  }

  function hideSecret() {
    $("secret-value").value = "";
    $("secret").hidden = true;
  }

  $("create").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const form = event.target;
    const sliding = form.elements.model.value === "auto";
    const request = { label: form.elements.label.value.trim() };
    request[sliding ? "auto" : "expire"] = form.elements.duration.value.trim();
    const cap = form.elements.cap.value.trim();
    if (sliding && cap) request.max_lifetime = cap;
    const scopes = form.elements.scopes.value.split(/[\s,]+/).filter(Boolean);
    for (const box of form.querySelectorAll("input[name=permission]:checked")) scopes.push(box.value);
    if (scopes.length) request.scopes = scopes;
    const meta = Object.create(null);
    for (const line of form.elements.meta.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const at = line.indexOf("=");
      if (at < 1) { showError("metadata `" + line + "`: give it as key=value"); return; }
      meta[line.slice(0, at)] = line.slice(at + 1);
    }
    if (Object.keys(meta).length) request.meta = meta;
    const networks = form.elements.allow_from.value.split(/[\s,]+/).filter(Boolean);
    if (networks.length) request.allow_from = networks;
    const rate = form.elements.rate.value.trim();
    if (rate) request.rate = rate;
    const maxUses = form.elements.max_uses.value.trim();
    if (maxUses) request.max_uses = Number(maxUses);
    if (state.principal && state.user !== state.principal.user) request.user = state.user;
    try {
      const created = await call("POST", "", request);
      form.reset();
      syncCap();
      $("secret-value").value = created.token;
      $("secret").hidden = false;
      $("secret-value").focus();
      $("secret-value").select();
      await load();
    } catch (e) { showError(e.message); }
  });

  $("copy").addEventListener("click", async () => {
    const field = $("secret-value");
    try {
      await navigator.clipboard.writeText(field.value);
    } catch (_) {
      field.select();
      document.execCommand("copy");
    }
    $("copied").textContent = "Copied.";
  });

  $("done").addEventListener("click", () => { hideSecret(); $("copied").textContent = ""; });

  function syncCap() {
    const sliding = $("create").elements.model.value === "auto";
    $("cap-row").hidden = !sliding;
  }
  for (const radio of document.querySelectorAll('input[name="model"]')) radio.addEventListener("change", syncCap);

  $("picker").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const name = $("pick-user").value.trim();
    state.user = name || (state.principal && state.principal.user);
    try { await load(); } catch (e) { showError(e.message); }
  });

  // Leaving or reloading the page forgets the secret.
  window.addEventListener("pagehide", hideSecret);
  syncCap();
  load().catch((e) => showError(e.message));
})();
