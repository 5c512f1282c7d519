// Renders /openapi.json: operations grouped by tag, with parameters, request bodies,
// responses, schemas (references resolved) and examples. DOM only: no innerHTML, no eval.
"use strict";

const METHODS = ["get", "put", "post", "delete", "patch"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function resolve(doc, item, seen) {
  if (item && item.$ref) {
    const parts = item.$ref.replace(/^#\//, "").split("/");
    if (seen.has(item.$ref)) return { description: "(recursive: " + item.$ref + ")" };
    let target = doc;
    for (const part of parts) target = target ? target[part] : undefined;
    return resolve(doc, target || {}, new Set([...seen, item.$ref]));
  }
  if (item && typeof item === "object") {
    const out = Array.isArray(item) ? [] : {};
    for (const [key, value] of Object.entries(item)) out[key] = resolve(doc, value, seen);
    return out;
  }
  return item;
}

function schemaBlock(doc, schema) {
  if (!schema) return null;
  return el("pre", {}, JSON.stringify(resolve(doc, schema, new Set()), null, 2));
}

function contentBlocks(doc, content) {
  const blocks = [];
  for (const [type, media] of Object.entries(content || {})) {
    blocks.push(el("div", {}, el("code", {}, type)));
    if (media.example !== undefined) {
      blocks.push(el("div", {}, "Example:"), el("pre", {}, JSON.stringify(media.example, null, 2)));
    }
    blocks.push(schemaBlock(doc, media.schema));
  }
  return blocks;
}

function operation(doc, path, method, op) {
  const secured = Array.isArray(op.security) && op.security.length > 0;
  const summary = el("summary", {},
    el("span", { class: "method " + method }, method.toUpperCase()), " ", path,
    secured ? el("span", { class: "lock" }, "auth: " + op.security.map((r) => Object.keys(r).join(" + ")).join(" | ")) : null);
  const body = el("div", {});
  if (op.summary) body.append(el("p", {}, op.summary));
  if (op.description && op.description !== op.summary) body.append(el("p", {}, op.description));
  const params = (op.parameters || []).map((p) => resolve(doc, p, new Set()));
  if (params.length) {
    const rows = params.map((p) => el("tr", {},
      el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, p.required ? "required" : "optional"),
      el("td", {}, p.description || ""), el("td", {}, el("code", {}, JSON.stringify(p.schema || {})))));
    body.append(el("h4", {}, "Parameters"), el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"),
      el("th", {}, ""), el("th", {}, "description"), el("th", {}, "schema")), ...rows));
  }
  if (op.requestBody) {
    const rb = resolve(doc, op.requestBody, new Set());
    body.append(el("h4", {}, "Request body" + (rb.required ? "" : " (optional)")));
    if (rb.description) body.append(el("p", {}, rb.description));
    body.append(...contentBlocks(doc, rb.content));
  }
  body.append(el("h4", {}, "Responses"));
  for (const [status, raw] of Object.entries(op.responses || {})) {
    const response = resolve(doc, raw, new Set());
    const headers = Object.keys(response.headers || {});
    body.append(el("details", {}, el("summary", {}, el("strong", {}, status), " ", response.description || ""),
      headers.length ? el("p", {}, "Headers: " + headers.join(", ")) : null,
      ...contentBlocks(doc, response.content)));
  }
  return el("details", { class: "op", id: (method + path).replace(/[^A-Za-z0-9]+/g, "-") }, summary, body);
}

async function main() {
  const response = await fetch("/openapi.json", { headers: { accept: "application/json" } });
  const doc = await response.json();
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  const summary = document.getElementById("summary");
  summary.textContent = (doc.info.description || "") + " OpenAPI " + doc.openapi + ". ";
  summary.append(el("a", { href: "/openapi.json" }, "Download the document"));
  const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const name = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(name)) byTag.set(name, { tag: { name }, ops: [] });
      byTag.get(name).ops.push(operation(doc, path, method, op));
    }
  }
  const toc = document.getElementById("toc");
  const main = document.getElementById("operations");
  for (const { tag, ops } of byTag.values()) {
    if (!ops.length) continue;
    toc.append(el("a", { href: "#tag-" + tag.name }, tag.name));
    main.append(el("section", { class: "tag", id: "tag-" + tag.name },
      el("h2", {}, tag.name), tag.description ? el("p", {}, tag.description) : null, ...ops));
  }
}

main().catch((error) => {
  document.getElementById("summary").textContent = "Could not load /openapi.json: " + error;
});
