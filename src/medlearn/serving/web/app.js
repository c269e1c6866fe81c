// medlearn clinician page: sign in with an API key, choose a model, predict, show the result.
// The key lives in sessionStorage only; nothing is sent anywhere but this server.
"use strict";
let key = sessionStorage.getItem("medlearn-key") || "";
let current = null;
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + key }, options.headers || {});
  const res = await fetch(path, Object.assign({}, options, { headers }));
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = body.error || {};
    let msg = err.message || "Request failed (" + res.status + ")";
    if (Array.isArray(err.details)) msg += " " + err.details.map((d) => d.error).join("; ");
    throw new Error(msg);
  }
  return body;
}

function text(el, value) { el.textContent = value == null ? "" : String(value); }

async function signIn() {
  key = $("key").value.trim() || key;
  text($("signin-error"), "");
  try {
    const me = await api("/v1/me");
    sessionStorage.setItem("medlearn-key", key);
    text($("who"), "signed in as " + me.role + " (" + me.key_id + ")");
    $("signin").hidden = true;
    $("work").hidden = false;
    const models = await api("/v1/models");
    const sel = $("model");
    sel.replaceChildren();
    for (const m of models.models) {
      const opt = document.createElement("option");
      opt.value = m.name;
      opt.textContent = m.name + " (" + m.task + ")";
      sel.appendChild(opt);
    }
    if (models.models.length) await chooseModel();
  } catch (e) {
    text($("signin-error"), e.message);
  }
}

async function chooseModel() {
  current = await api("/v1/models/" + encodeURIComponent($("model").value));
  const card = current.model_card || {};
  const lines = [
    current.name + " version " + current.version + " — " + (current.task || ""),
    card.intended_use || "",
    Object.entries(card.test_metrics || {}).map(([k, v]) => k + " " + v).join("; "),
    (card.limitations || []).join(" "),
  ];
  const box = $("card");
  box.replaceChildren();
  for (const l of lines.filter(Boolean)) {
    const p = document.createElement("p");
    text(p, l);
    box.appendChild(p);
  }
  const isImage = !current.input || current.input.kind === "image";
  $("image-form").hidden = !isImage;
  $("record-form").hidden = isImage;
  if (!isImage) {
    const fields = $("fields");
    fields.replaceChildren();
    for (const f of current.input.features || []) {
      const name = typeof f === "string" ? f : f.name;
      const label = document.createElement("label");
      text(label, name);
      const input = document.createElement("input");
      input.name = name;
      input.id = "f-" + name;
      label.appendChild(input);
      fields.appendChild(label);
    }
  }
}

function show(res) {
  const row = res.predictions[0];
  $("result").hidden = false;
  text($("prediction"), row.prediction);
  const p = row.probabilities ? row.probabilities[row.prediction] : null;
  text($("probability"), p == null ? "n/a" : p.toFixed(3));
  text($("uncertainty"), row.uncertainty ? row.uncertainty.entropy.toFixed(3) : "n/a");
  const table = $("probs");
  table.replaceChildren();
  for (const [k, v] of Object.entries(row.probabilities || {})) {
    const tr = document.createElement("tr");
    const a = document.createElement("td"); text(a, k);
    const b = document.createElement("td"); text(b, Number(v).toFixed(3));
    tr.append(a, b);
    table.appendChild(tr);
  }
  const exp = row.explanation;
  $("explanation").hidden = !(exp && exp.base64);
  if (exp && exp.base64) $("overlay").src = "data:image/png;base64," + exp.base64;
}

async function predictImage(ev) {
  ev.preventDefault();
  text($("predict-error"), "");
  const file = $("file").files[0];
  if (!file) { text($("predict-error"), "Choose an image first."); return; }
  const form = new FormData();
  form.append("file", file);
  try {
    show(await api("/v1/models/" + encodeURIComponent(current.name) +
      "/predict?explain=true&version=" + encodeURIComponent(current.version),
      { method: "POST", body: form }));
  } catch (e) { text($("predict-error"), e.message); }
}

async function predictRecord(ev) {
  ev.preventDefault();
  text($("predict-error"), "");
  const rec = {};
  for (const input of $("fields").querySelectorAll("input")) {
    if (input.value === "") continue;
    const n = Number(input.value);
    rec[input.name] = Number.isNaN(n) ? input.value : n;
  }
  try {
    show(await api("/v1/models/" + encodeURIComponent(current.name) + "/predict?version=" +
      encodeURIComponent(current.version), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ records: [rec] }) }));
  } catch (e) { text($("predict-error"), e.message); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-btn").addEventListener("click", signIn);
  $("key").addEventListener("keydown", (e) => { if (e.key === "Enter") signIn(); });
  $("model").addEventListener("change", chooseModel);
  $("image-form").addEventListener("submit", predictImage);
  $("record-form").addEventListener("submit", predictRecord);
  if (key) signIn();
});
