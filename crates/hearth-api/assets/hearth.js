// Hearth's browser client, shared by /play and /admin: calls the JSON API in browser mode
// (the session rides on HttpOnly cookies; state-changing calls send the CSRF token from the
// readable `hearth_csrf` cookie), turns problem+json answers into errors that name the
// field, and builds DOM nodes without ever parsing strings as HTML.

/** The session's CSRF token, or null when there is no browser session. */
export function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === 'hearth_csrf') return decodeURIComponent(rest.join('='));
  }
  return null;
}

/** Whether a browser session is likely open (its readable CSRF cookie exists). */
export function hasSession() {
  return csrfToken() !== null;
}

/** An answer that was not 2xx: the status and the problem document. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(describeProblem(status, problem));
    this.status = status;
    this.problem = problem || {};
  }
  get type() {
    return (this.problem.type || '').replace('urn:hearth:problem:', '');
  }
}

/** One line for people: the detail, then each field error as `field: message`. */
export function describeProblem(status, problem) {
  if (!problem) return `HTTP ${status}`;
  const parts = [problem.detail || problem.title || `HTTP ${status}`];
  for (const e of problem.errors || []) parts.push(`${e.field}: ${e.message}`);
  return parts.join(' — ');
}

/**
 * Calls the API. `body` is sent as JSON when given. On a 401 with a session, the refresh
 * cookie is exchanged once (`POST /v1/auth/refresh`) and the call repeated.
 */
export async function api(method, path, body, { headers = {}, retry = true } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  const csrf = csrfToken();
  if (csrf && !['GET', 'HEAD'].includes(method)) h['x-csrf-token'] = csrf;
  const response = await fetch(path, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (response.status === 401 && retry && csrf && !path.startsWith('/v1/auth/')) {
    const refreshed = await fetch('/v1/auth/refresh', {
      method: 'POST',
      headers: { accept: 'application/json', 'x-csrf-token': csrf },
      credentials: 'same-origin',
    });
    if (refreshed.ok) return api(method, path, body, { headers, retry: false });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, status: response.status, headers: response.headers };
}

/** GET and return the JSON body. */
export async function getJson(path) {
  return (await api('GET', path)).data;
}

/** A new Idempotency-Key. */
export function newKey() {
  return crypto.randomUUID();
}

/**
 * Builds an element: `el('button', {type: 'button', class: 'x'}, 'Text', child)`. Strings
 * become text nodes; attributes starting with `on` are listeners, never attributes.
 */
export function el(tag, attrs = {}, ...children) {
  const svg = ['svg', 'g', 'line', 'rect', 'text', 'polyline', 'circle', 'title', 'path'].includes(tag);
  const node = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Shows a message in a status line (`role="status"` or `role="alert"` in the markup). */
export function say(node, text, kind = '') {
  node.className = `status ${kind}`.trim();
  node.textContent = text;
}

/** Shows an error (an ApiError or anything thrown) in a status line. */
export function sayError(node, error) {
  say(node, error instanceof ApiError ? error.message : `Error: ${error.message || error}`, 'error');
}

/**
 * Wires a form to an async handler: the browser never submits it; the submit button is
 * disabled while the handler runs, and an error lands in `status`.
 */
export function onSubmit(form, status, handler) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await handler(new FormData(form), event.submitter);
    } catch (error) {
      sayError(status, error);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}

/** A UTC date-time as `2026-12-05 18:00:00`. */
export function when(iso) {
  if (!iso) return '';
  return iso.replace('T', ' ').replace(/\.\d+/, '').replace('Z', '');
}

/** `$('#id')`, failing loudly when the markup lacks it. */
export function $(selector, root = document) {
  const node = root.querySelector(selector);
  if (!node) throw new Error(`no element ${selector}`);
  return node;
}

/** Logs out (the gateway clears the cookies), ignoring a session that already ended. */
export async function logout() {
  try {
    await api('POST', '/v1/auth/logout', undefined, { retry: false });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
  }
}
