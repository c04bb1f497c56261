// agentserver web chat. Every piece of server, user or model text reaches the page through textContent or
// DOM nodes built by renderMarkdown (markdown.js yields a tree, never HTML): nothing is parsed as HTML.
// Needs i18n.js and markdown.js loaded first (index.html).
"use strict";

const API = "/api/v1";
const KEYS = { auth: "agentserver.auth", session: "agentserver.session", lang: "agentserver.lang", theme: "agentserver.theme" };
const DEFAULT_SESSION_NAME = "New chat";  // the server's name for a session created without one
const NO_RETRY_PATHS = new Set(["/auth/login", "/auth/register", "/auth/refresh"]);
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const state = {
  auth: null,          // {access, refresh, expiresAt}
  user: null,
  sessions: [],
  sessionId: null,
  filter: "",
  turn: null,          // the LiveAnswer being written, if any
  loading: null,       // the history of the chat being opened, while it loads
  view: 0,             // bumped on every session switch: late answers for an old view are dropped
  generation: 0,       // bumped on logout: late answers for the previous user are dropped
  features: { assistants: false, files: false },
  assistants: [],
  assistantId: "",
  files: [],
  filesTimer: null,
};

// --- small DOM helpers -------------------------------------------------------------------------------------
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const ICONS = {
  plus: ["M12 5v14", "M5 12h14"],
  send: ["M5 12h14", "M13 6l6 6-6 6"],
  stop: ["M7 7h10v10H7z"],
  trash: ["M4 7h16", "M10 11v6", "M14 11v6", "M6 7l1 13h10l1-13", "M9 7V4h6v3"],
  edit: ["M4 20h4L19 9l-4-4L4 16v4z", "M14 6l4 4"],
  search: ["M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14z", "M20 20l-4-4"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  menu: ["M4 7h16", "M4 12h16", "M4 17h16"],
  copy: ["M9 9h10v10H9z", "M5 15V5h10"],
  check: ["M5 12l5 5 9-10"],
  sun: ["M12 17a5 5 0 1 0 0-10 5 5 0 0 0 0 10z", "M12 2v2", "M12 20v2", "M4.9 4.9l1.4 1.4", "M17.7 17.7l1.4 1.4", "M2 12h2", "M20 12h2", "M4.9 19.1l1.4-1.4", "M17.7 6.3l1.4-1.4"],
  moon: ["M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5z"],
  settings: ["M4 6h10", "M18 6h2", "M4 12h4", "M12 12h8", "M4 18h12", "M20 18h0", "M16 4v4", "M10 10v4", "M18 16v4"],
  file: ["M6 3h8l4 4v14H6z", "M14 3v4h4", "M9 13h6", "M9 17h6"],
  memory: ["M12 3a6 6 0 0 0-6 6c0 2.5 1.5 4 2.5 5v3h7v-3c1-1 2.5-2.5 2.5-5a6 6 0 0 0-6-6z", "M9.5 20h5"],
  paperclip: ["M20 11l-8.5 8.5a5 5 0 0 1-7-7L13 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L14 7"],
  upload: ["M12 16V4", "M7 9l5-5 5 5", "M4 16v4h16v-4"],
  tool: ["M14.7 6.3a4 4 0 0 0-5.4 5.1L4 16.7 7.3 20l5.3-5.3a4 4 0 0 0 5.1-5.4l-2.6 2.6-2.4-.6-.6-2.4z"],
  logout: ["M15 4h4v16h-4", "M10 8l-4 4 4 4", "M6 12h11"],
  key: ["M8 15a4 4 0 1 0 0-8 4 4 0 0 0 0 8z", "M12 11h9", "M18 11v3", "M21 11v2"],
  alert: ["M12 3l10 18H2z", "M12 10v4", "M12 17v.5"],
};

function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

function iconButton(name, label, onclick, extraClass) {
  return el("button", { type: "button", class: `icon-button ${extraClass || ""}`, "aria-label": label, title: label, onclick }, icon(name));
}

// --- Markdown tree → DOM -----------------------------------------------------------------------------------
function inlineNodes(nodes) {
  return nodes.map((node) => {
    switch (node.type) {
      case "text": return document.createTextNode(node.text);
      case "break": return el("br");
      case "code": return el("code", { text: node.text });
      case "strong": return el("strong", null, inlineNodes(node.children));
      case "em": return el("em", null, inlineNodes(node.children));
      case "del": return el("del", null, inlineNodes(node.children));
      case "link": return el("a", { href: node.href, target: "_blank", rel: "noopener noreferrer nofollow" }, inlineNodes(node.children));
      default: return document.createTextNode("");
    }
  });
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const area = el("textarea", { class: "offscreen", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

function copyButton(getText) {
  const label = el("span", { text: t("chat.copy") });
  const button = el("button", { type: "button", class: "copy-button", "aria-label": t("chat.copy") }, icon("copy"), label);
  button.addEventListener("click", async () => {
    await copyText(getText());
    label.textContent = t("chat.copied");
    button.classList.add("copied");
    setTimeout(() => { label.textContent = t("chat.copy"); button.classList.remove("copied"); }, 1500);
  });
  return button;
}

function codeBlock(lang, text) {
  const code = el("code", { class: lang ? `lang-${lang.replace(/[^\w-]/g, "")}` : "" });
  for (const token of highlight(text, lang)) {
    code.append(token.cls ? el("span", { class: `tok-${token.cls}`, text: token.text }) : document.createTextNode(token.text));
  }
  return el("div", { class: "codeblock" },
    el("div", { class: "code-head" }, el("span", { class: "code-lang", text: lang || t("chat.code") }), copyButton(() => text)),
    el("pre", null, code));
}

function blockNode(block) {
  switch (block.type) {
    case "paragraph": return el("p", null, inlineNodes(block.children));
    case "heading": return el(`h${Math.min(6, block.level + 2)}`, null, inlineNodes(block.children));
    case "code": return codeBlock(block.lang, block.text);
    case "rule": return el("hr");
    case "quote": return el("blockquote", null, block.children.map(blockNode));
    case "ul":
    case "ol": {
      const list = el(block.type, block.type === "ol" && block.start !== 1 ? { start: String(block.start) } : null);
      for (const item of block.items) {
        const tight = item.length === 1 && item[0].type === "paragraph";
        list.append(el("li", null, tight ? inlineNodes(item[0].children) : item.map(blockNode)));
      }
      return list;
    }
    case "table": {
      const cell = (tag, content, n) => el(tag, { class: block.align[n] ? `align-${block.align[n]}` : null }, inlineNodes(content));
      return el("div", { class: "table-wrap" }, el("table", null,
        el("thead", null, el("tr", null, block.head.map((content, n) => cell("th", content, n)))),
        el("tbody", null, block.rows.map((row) => el("tr", null, row.map((content, n) => cell("td", content, n)))))));
    }
    default: return document.createTextNode("");
  }
}

function renderMarkdown(text, { citations = false } = {}) {
  const fragment = document.createDocumentFragment();
  for (const block of parseMarkdown(text)) fragment.append(blockNode(block));
  if (citations) linkCitations(fragment);
  return fragment;
}

// Answers cite the user's files by name ("(handbook.pdf, page 3)"): each known name becomes a button that
// downloads the file (with the bearer token: a plain link could not send it).
function linkCitations(root) {
  const files = state.files.filter((f) => f.id && f.status === "ready" && fileName(f).length >= 3);
  if (!files.length) return;
  const byName = new Map(files.map((f) => [fileName(f), f]));
  const names = [...byName.keys()].sort((a, b) => b.length - a.length);
  const pattern = new RegExp(names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement || !node.parentElement.closest("pre, code, a, button")) found.push(node);
  }
  for (const node of found) {
    const text = node.nodeValue;
    pattern.lastIndex = 0;
    if (!pattern.test(text)) continue;
    pattern.lastIndex = 0;
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      if (match.index > last) parts.push(document.createTextNode(text.slice(last, match.index)));
      const file = byName.get(match[0]);
      parts.push(el("button", { type: "button", class: "citation", title: t("docs.open"), onclick: () => downloadFile(file) }, icon("file"), match[0]));
      last = match.index + match[0].length;
    }
    if (last < text.length) parts.push(document.createTextNode(text.slice(last)));
    node.replaceWith(...parts);
  }
}

async function downloadFile(file) {
  try {
    const blob = await (await api(`/files/${file.id}/content`)).blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: fileName(file), class: "offscreen" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10e3);
  } catch (error) { showBanner(errorText(error)); }
}

// --- API client: bearer token, silent refresh (rotating), typed errors ---------------------------------------
class ApiError extends Error {
  constructor(status, body, headers) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.error = (body && body.error) || "";
    this.detail = (body && body.detail) || "";
    this.retryAfter = parseInt((headers && headers.get("Retry-After")) || "", 10) || null;
  }
}

class OfflineError extends Error {}

let refreshing = null;
let refreshTimer = null;

function saveAuth(pair) {
  state.auth = { access: pair.access_token, refresh: pair.refresh_token, expiresAt: Date.parse(pair.expires_at) || Date.now() + 15 * 60e3 };
  sessionStorage.setItem(KEYS.auth, JSON.stringify(state.auth));
  scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!state.auth) return;
  const wait = Math.max(5e3, state.auth.expiresAt - Date.now() - 60e3);
  refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), Math.min(wait, 2 ** 31 - 1));
}

// One refresh at a time: the refresh token rotates, and presenting a spent one revokes the whole family.
function refreshTokens() {
  if (!refreshing) {
    const generation = state.generation;
    refreshing = (async () => {
      let response;
      try {
        response = await fetch(`${API}/auth/refresh`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: state.auth.refresh }),
        });
      } catch (_) { throw new OfflineError(); }
      if (generation !== state.generation) throw new ApiError(401, null, null);
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null), response.headers);
      saveAuth(await response.json());
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function api(path, options = {}) {
  const { method = "GET", json, body, headers = {}, signal } = options;
  const retryable = !NO_RETRY_PATHS.has(path);
  if (state.auth && retryable && state.auth.expiresAt - Date.now() < 30e3) await refreshTokens().catch(() => {});
  const send = () => {
    const all = { ...headers };
    if (state.auth) all.Authorization = `Bearer ${state.auth.access}`;
    let payload = body;
    if (json !== undefined) { all["Content-Type"] = "application/json"; payload = JSON.stringify(json); }
    return fetch(API + path, { method, headers: all, body: payload, signal });
  };
  const attempt = async () => {
    try { return await send(); } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new OfflineError();
    }
  };
  let response = await attempt();
  if (response.status === 401 && state.auth && retryable) {
    try { await refreshTokens(); } catch (error) {
      if (error instanceof OfflineError) throw error;
      sessionExpired();
      throw new ApiError(401, null, null);
    }
    response = await attempt();
    if (response.status === 401) { sessionExpired(); throw new ApiError(401, null, null); }
  }
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null), response.headers);
  return response;
}

async function apiJson(path, options) {
  const response = await api(path, options);
  return response.status === 204 ? null : response.json();
}

// Server-Sent Events over fetch (EventSource cannot POST or send headers): "id: n\nevent: x\ndata: {...}\n\n".
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "", id = null;
      for (const line of frame.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
        else if (line.startsWith("id: ")) id = parseInt(line.slice(4), 10);
      }
      if (data) onEvent(name, JSON.parse(data), id);
    }
  }
}

function errorText(error) {
  if (error instanceof OfflineError) return t("error.offline");
  if (error instanceof ApiError) {
    if (error.status === 429 && error.error === "QuotaExceeded") return t("error.quota", { detail: error.detail });
    if (error.status === 429) return t("error.rateLimited", { seconds: error.retryAfter || 1 });
    if (error.status === 409 && error.error === "TurnInProgress") return t("error.busy");
    if (error.error === "MessageTooLong") return t("error.tooLong");
    return t("error.generic", { detail: error.detail || `HTTP ${error.status}` });
  }
  return t("error.generic", { detail: error.message || String(error) });
}

// --- the answer being written ---------------------------------------------------------------------------------
// Parts in order: text, tool call, text, ... `reset` (a retried or fallback model call restarts its answer)
// empties the text the current call streamed; text from before a tool call is kept.
class AnswerText {
  constructor() { this.parts = [{ kind: "text", text: "" }]; }
  get current() { return this.parts[this.parts.length - 1]; }
  apply(name, data) {
    if (name === "token") { this.current.text += data.content; return "text"; }
    if (name === "reset") { this.current.text = ""; return "text"; }
    if (name === "tool_call") {
      this.parts.push({ kind: "tool", id: data.id, name: data.name, args: data.args, result: null });
      this.parts.push({ kind: "text", text: "" });
      return "tool";
    }
    if (name === "tool_result") {
      const part = this.parts.find((p) => p.kind === "tool" && p.id === data.id)
        || [...this.parts].reverse().find((p) => p.kind === "tool" && p.result === null);
      if (part) { part.result = data.content; part.waiting = false; }
      return "tool";
    }
    if (name === "approval_required") {
      // The call the run paused on waits for the user, it is not running.
      const part = [...this.parts].reverse().find((p) => p.kind === "tool" && p.result === null);
      if (part) { part.waiting = true; return "tool"; }
    }
    return null;
  }
  get text() { return this.parts.filter((p) => p.kind === "text").map((p) => p.text).join(""); }
}

function toolNode(part) {
  const key = part.result !== null ? "chat.toolDone" : part.waiting ? "chat.toolWaiting" : "chat.toolRunning";
  const status = t(key, { name: part.name });
  const details = el("details", { class: `tool ${part.result === null ? "running" : "finished"}` },
    el("summary", null, icon("tool"), el("span", { class: "tool-status", text: status })),
    el("div", { class: "tool-label", text: t("chat.toolArgs") }),
    el("pre", { class: "tool-args", text: JSON.stringify(part.args ?? {}, null, 2) }));
  if (part.result !== null) {
    details.append(el("div", { class: "tool-label", text: t("chat.toolResult") }), el("pre", { class: "tool-result", text: String(part.result) }));
  }
  return details;
}

function thinkingNode() {
  return el("div", { class: "thinking", role: "status" },
    el("span", { class: "dots", "aria-hidden": "true" }, el("span"), el("span"), el("span")),
    el("span", { class: "thinking-label", text: t("chat.thinking") }),
    el("span", { class: "thinking-time", "aria-hidden": "true" }));
}

class LiveAnswer {
  constructor({ view, onSettled }) {
    this.view = view;
    this.generation = state.generation;
    this.onSettled = onSettled || (() => {});
    this.runId = null;
    this.lastSeq = 0;
    this.finished = false;
    this.paused = false;
    this.detached = false;
    this.reconnecting = false;
    this.controller = new AbortController();
    this.answer = new AnswerText();
    this.partNodes = [];
    this.renderQueued = false;
    this.clock = null;
    this.body = el("div", { class: "msg-body" });
    this.thinking = thinkingNode();
    this.footer = el("div", { class: "msg-footer" });
    this.bubble = el("article", { class: "msg assistant live", "aria-label": t("chat.bot") },
      el("div", { class: "avatar", "aria-hidden": "true", text: "A" }),
      el("div", { class: "msg-main" }, this.body, this.thinking, this.footer));
    this.syncParts();
    this.updateThinking();
  }

  get settled() { return this.finished || this.paused; }

  stale() { return this.detached || this.generation !== state.generation; }

  handle(name, data, id) {
    if (this.stale()) return;
    if (this.reconnecting) this.setReconnecting(false);
    if (id) this.lastSeq = Math.max(this.lastSeq, id);
    if (name === "metadata") { this.runId = data.run_id || this.runId; return; }
    const changed = this.answer.apply(name, data);
    if (changed === "tool") this.syncParts();
    else if (changed === "text") this.queueRender();
    if (name === "approval_required") this.pause(data);
    else if (name === "done") this.finish(data);
    else if (name === "error") this.fail(data);
    this.updateThinking();
    keepScrolled();
  }

  // One DOM node per part; only the text part being written is re-rendered as tokens arrive.
  syncParts() {
    this.answer.parts.forEach((part, n) => {
      let node = this.partNodes[n];
      if (part.kind === "tool") {
        const fresh = toolNode(part);
        if (node) { fresh.open = node.open; node.replaceWith(fresh); } else this.body.append(fresh);
        this.partNodes[n] = fresh;
      } else if (!node) {
        node = el("div", { class: "md" });
        this.body.append(node);
        this.partNodes[n] = node;
        node.replaceChildren(renderMarkdown(part.text));
      }
    });
    this.queueRender();
  }

  queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => this.renderNow());
  }

  renderNow() {
    this.renderQueued = false;
    this.answer.parts.forEach((part, n) => {
      const node = this.partNodes[n];
      if (part.kind === "text" && node && node.shownText !== part.text) {
        node.replaceChildren(renderMarkdown(part.text, { citations: this.finished }));
        node.shownText = part.text;
      }
    });
    keepScrolled();
  }

  updateThinking() {
    this.thinking.hidden = this.settled || this.detached || (this.answer.current.text.length > 0 && !this.reconnecting);
    // A local model can take 10-30 s to its first token: after a few seconds, show that time passes.
    if (this.thinking.hidden) { clearInterval(this.clock); this.clock = null; return; }
    if (!this.clock) {
      const since = Date.now();
      this.clock = setInterval(() => {
        const seconds = Math.round((Date.now() - since) / 1000);
        this.thinking.querySelector(".thinking-time").textContent = seconds >= 3 && !this.reconnecting ? `${seconds} s` : "";
        if (this.stale()) { clearInterval(this.clock); this.clock = null; }
      }, 1000);
    }
  }

  // The stream broke off (network, server restart): say so while re-joining; the next event clears it.
  setReconnecting(on) {
    this.reconnecting = on;
    this.thinking.classList.toggle("reconnecting", on);
    this.thinking.querySelector(".thinking-label").textContent = on ? t("error.lost") : t("chat.thinking");
    this.updateThinking();
  }

  async consume(response) {
    await readEvents(response, (name, data, id) => this.handle(name, data, id));
  }

  // Re-join the run's stream after the last event seen, until it ends, pauses, or the view changes.
  async follow() {
    for (let attempt = 0; !this.settled && !this.stale(); attempt++) {
      try {
        const response = await api(`/runs/${this.runId}/stream`, { headers: { "Last-Event-ID": String(this.lastSeq) }, signal: this.controller.signal });
        await this.consume(response);
        attempt = 0;
      } catch (error) {
        if (error.name === "AbortError" || this.stale()) return;
        if (!(error instanceof OfflineError) && !(error instanceof TypeError)) { this.fail({ error: error.error, detail: errorText(error) }); return; }
        this.setReconnecting(true);
        if (attempt >= 6) {
          showBanner(t("error.offline"), () => this.follow());
          return;
        }
      }
      if (!this.settled) await sleep(Math.min(500 * 2 ** attempt, 8000));
    }
  }

  pause(data) {
    this.paused = true;
    this.runId = data.run_id || this.runId;
    const original = JSON.stringify(data.args ?? {}, null, 2);
    const args = el("textarea", { class: "approval-args", rows: String(Math.min(10, original.split("\n").length + 1)), "aria-label": t("chat.toolArgs"), spellcheck: "false" });
    args.value = original;
    const message = el("p", { class: "error", role: "alert" });
    const approve = el("button", { type: "button", class: "primary", text: t("approval.approve") });
    const reject = el("button", { type: "button", class: "secondary danger", text: t("approval.reject") });
    args.addEventListener("input", () => { approve.textContent = args.value.trim() === original.trim() ? t("approval.approve") : t("approval.edit"); });
    const card = el("div", { class: "approval", role: "group", "aria-label": t("approval.title") },
      el("div", { class: "approval-title" }, icon("alert"), el("strong", { text: t("approval.title") })),
      el("p", null, t("approval.body").split("{tool}")[0], el("code", { text: data.tool || "" }), t("approval.body").split("{tool}")[1] || ""),
      args,
      el("div", { class: "row" }, approve, reject),
      message);
    const decide = async (decision) => {
      let body = { decision };
      if (decision === "approve" && args.value.trim() !== original.trim()) {
        let edited;
        try { edited = JSON.parse(args.value); } catch (_) { edited = null; }
        if (!edited || typeof edited !== "object" || Array.isArray(edited)) { message.textContent = t("approval.badJson"); return; }
        body = { decision: "edit", args: edited };
      }
      approve.disabled = reject.disabled = true;
      try {
        await api(`/runs/${this.runId}/resume`, { method: "POST", json: body });
      } catch (error) {
        message.textContent = errorText(error);
        approve.disabled = reject.disabled = false;
        return;
      }
      card.replaceWith(el("div", { class: `approval-note ${decision}` }, icon(decision === "reject" ? "close" : "check"),
        el("span", { text: decision === "reject" ? t("approval.rejected") : t("approval.approved") })));
      this.paused = false;
      for (const part of this.answer.parts) if (part.waiting) part.waiting = false;
      this.syncParts();
      this.updateThinking();
      setBusy(true);
      this.follow();
    };
    approve.addEventListener("click", () => decide("approve"));
    reject.addEventListener("click", () => decide("reject"));
    this.body.append(card);
    this.renderNow();
    this.onSettled(this);
  }

  finish(data) {
    this.finished = true;
    for (const node of this.partNodes) if (node) node.shownText = null;  // re-render once, with citations
    this.renderNow();
    this.bubble.classList.remove("live");
    if (data.message_id) {
      const twin = $("messages").querySelector(`[data-id="${CSS.escape(String(data.message_id))}"]`);
      if (twin && twin !== this.bubble) { this.bubble.remove(); this.onSettled(this); return; }
      this.bubble.dataset.id = data.message_id;
    }
    const usage = data.usage || {};
    const notes = [];
    if (data.finish_reason === "cancelled") notes.push(el("span", { class: "badge", text: t("chat.stopped") }));
    if (data.finish_reason === "max_tool_rounds") notes.push(el("span", { class: "badge", text: t("chat.maxTools") }));
    if (usage.output_tokens) notes.push(el("span", { class: "meta", text: `${t("chat.tokens", { n: usage.output_tokens })}${usage.model ? ` · ${usage.model}` : ""}` }));
    if (this.answer.text) notes.push(copyButton(() => this.answer.text));
    this.footer.replaceChildren(...notes);
    this.onSettled(this);
  }

  fail(data) {
    this.finished = true;
    this.renderNow();
    this.bubble.classList.remove("live");
    this.bubble.classList.add("failed");
    const text = data.error && /LLM|Model|Provider/i.test(data.error) ? t("error.model", { detail: data.detail || data.error }) : (data.detail || t("error.generic", { detail: data.error || "" }));
    this.footer.replaceChildren(el("p", { class: "msg-error", role: "alert" }, icon("alert"), el("span", { text })));
    this.updateThinking();
    this.onSettled(this);
  }

  detach() {
    this.detached = true;
    clearInterval(this.clock);
    this.controller.abort();
  }
}

// --- messages view -------------------------------------------------------------------------------------------
function nearBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

let stickToBottom = true;
function keepScrolled() {
  if (stickToBottom) { const box = $("messages"); box.scrollTop = box.scrollHeight; }
}

function userBubble(text, id) {
  return el("article", { class: "msg user", "aria-label": t("chat.you"), dataset: id ? { id } : undefined },
    el("div", { class: "msg-main" }, el("div", { class: "msg-body plain", text })));
}

function assistantBubble(text, id) {
  const body = el("div", { class: "msg-body" }, el("div", { class: "md" }, renderMarkdown(text, { citations: true })));
  return el("article", { class: "msg assistant", "aria-label": t("chat.bot"), dataset: id ? { id } : undefined },
    el("div", { class: "avatar", "aria-hidden": "true", text: "A" }),
    el("div", { class: "msg-main" }, body, el("div", { class: "msg-footer" }, copyButton(() => text))));
}

function toolBubble(text, id) {
  return el("article", { class: "msg assistant tool-message", dataset: id ? { id } : undefined },
    el("div", { class: "avatar ghost", "aria-hidden": "true" }),
    el("div", { class: "msg-main" }, el("details", { class: "tool finished" },
      el("summary", null, icon("tool"), el("span", { class: "tool-status", text: t("chat.toolOutput") })),
      el("pre", { class: "tool-result", text }))));
}

function messageNode(message) {
  if (message.role === "user") return userBubble(message.content, message.id);
  if (message.role === "tool") return toolBubble(message.content, message.id);
  return assistantBubble(message.content, message.id);
}

function renderEmptyState() {
  const box = $("messages");
  const hero = el("div", { class: "empty-state" },
    el("div", { class: "logo", "aria-hidden": "true" }, el("span", { text: "A" })),
    el("h2", { text: t("chat.emptyTitle") }),
    el("p", { text: t("chat.emptyHint") }));
  if (state.features.assistants && state.assistants.length > 1) {
    const select = el("select", { id: "assistant-select", "aria-label": t("chat.assistant") });
    for (const assistant of state.assistants) {
      const option = el("option", { value: String(assistant.id ?? assistant.assistant_id), text: assistant.name || assistant.id });
      select.append(option);
    }
    select.value = state.assistantId || select.value;
    state.assistantId = select.value;
    select.addEventListener("change", () => { state.assistantId = select.value; });
    const current = state.assistants.find((a) => String(a.id ?? a.assistant_id) === state.assistantId);
    const description = el("p", { class: "assistant-description", text: (current && current.description) || "" });
    select.addEventListener("change", () => {
      const chosen = state.assistants.find((a) => String(a.id ?? a.assistant_id) === select.value);
      description.textContent = (chosen && chosen.description) || "";
    });
    hero.append(el("label", { class: "assistant-chooser" }, el("span", { text: t("chat.assistant") }), select), description);
  }
  box.replaceChildren(hero);
}

function setBusy(busy) {
  const button = $("send");
  button.classList.toggle("stop", busy);
  button.replaceChildren(icon(busy ? "stop" : "send"));
  button.setAttribute("aria-label", busy ? t("chat.stop") : t("chat.send"));
  button.title = busy ? `${t("chat.stop")} (Esc)` : t("chat.send");
  $("composer-hint").textContent = busy ? t("chat.stopHint") : t("chat.keys");
  $("composer-hint").classList.toggle("idle", !busy);
}

function turnActive() { return state.turn && !state.turn.finished && !state.turn.detached; }

function newLiveAnswer() {
  const live = new LiveAnswer({
    view: state.view,
    onSettled: (answer) => { if (state.turn === answer && answer.finished) { state.turn = null; setBusy(false); } },
  });
  state.turn = live;
  setBusy(true);
  $("messages").append(live.bubble);
  stickToBottom = true;
  keepScrolled();
  return live;
}

function detachTurn() {
  if (state.turn) state.turn.detach();
  state.turn = null;
  setBusy(false);
}

function titleFrom(text) {
  const line = text.replace(/[\s\u0000-\u001f\u007f]+/g, " ").trim();
  if (line.length <= 60) return line;
  const cut = line.slice(0, 60);
  const space = cut.lastIndexOf(" ");
  return `${(space > 30 ? cut.slice(0, space) : cut).trim()}…`;
}

async function ensureSession(text) {
  if (state.sessionId) return state.sessionId;
  const body = { name: titleFrom(text) };
  if (state.features.assistants && state.assistantId) body.assistant_id = state.assistantId;
  const session = await apiJson("/sessions", { method: "POST", json: body });
  state.sessions.unshift(session);
  selectSession(session.id);
  renderSessions();
  return session.id;
}

// Sessions made elsewhere (the API, another client) keep the server's default name: the first message names them.
function nameFromFirstMessage(sessionId, text) {
  const session = state.sessions.find((s) => s.id === sessionId);
  if (!session || session.name !== DEFAULT_SESSION_NAME) return;
  if ($("messages").querySelectorAll(".msg.user").length > 1) return;
  const name = titleFrom(text);
  session.name = name;
  renderSessions();
  setTitle();
  api(`/sessions/${sessionId}`, { method: "PATCH", json: { name } }).catch(() => {});
}

async function send(text) {
  // A message typed while the chat's history is still loading waits for it (the history replaces the view).
  if (state.loading) await state.loading;
  if (turnActive() || !text.trim()) return;
  hideBanner();
  const input = $("input");
  input.value = "";
  autosize();
  if ($("messages").querySelector(".empty-state")) $("messages").replaceChildren();
  const mine = userBubble(text);
  mine.classList.add("pending");
  $("messages").append(mine);
  const live = newLiveAnswer();
  let sessionId;
  try {
    sessionId = await ensureSession(text);
    live.view = state.view;
    const response = await api("/chatbot/chat/stream", { method: "POST", json: { session_id: sessionId, message: text }, signal: live.controller.signal });
    mine.classList.remove("pending");
    live.runId = response.headers.get("X-Run-Id");
    nameFromFirstMessage(sessionId, text);
    touchSession(sessionId);
    await live.consume(response);
    if (!live.settled && !live.stale()) await live.follow();
  } catch (error) {
    if (error.name === "AbortError" || live.stale()) return;
    if (live.runId) {  // accepted, then the connection dropped: re-join
      live.setReconnecting(true);
      await live.follow();
      return;
    }
    mine.remove();
    live.bubble.remove();
    if (state.turn === live) { state.turn = null; setBusy(false); }
    if (!$("messages").children.length && !state.sessionId) renderEmptyState();
    if (!input.value) { input.value = text; autosize(); }
    showBanner(errorText(error), error instanceof OfflineError || error.status === 429 || error.status >= 500 ? () => send($("input").value) : null);
  }
}

async function stop() {
  const live = state.turn;
  if (!live || live.finished) return;
  if (!live.runId) { live.detach(); state.turn = null; setBusy(false); return; }
  try {
    await api(`/runs/${live.runId}/cancel`, { method: "POST" });
    if (live.paused) { live.finish({ finish_reason: "cancelled" }); live.body.querySelector(".approval")?.remove(); }
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 409)) showBanner(errorText(error));
  }
}

// --- sessions ------------------------------------------------------------------------------------------------
function displayName(session) { return session.name === DEFAULT_SESSION_NAME ? t("chat.untitled") : session.name; }

function assistantName(id) {
  const assistant = state.assistants.find((a) => String(a.id) === String(id));
  return assistant ? assistant.name : "";
}

function setTitle() {
  const session = state.sessions.find((s) => s.id === state.sessionId);
  $("session-title").textContent = session ? displayName(session) : t("nav.newChat");
  const chip = $("session-assistant");
  // The deployment's default assistant comes first in the list: only another one is worth a label.
  const chosen = session && session.assistant_id && state.assistants.length > 1 && String(session.assistant_id) !== String(state.assistants[0].id);
  const name = chosen ? assistantName(session.assistant_id) : "";
  chip.textContent = name;
  chip.hidden = !name;
  document.title = session ? `${displayName(session)} · agentserver` : "agentserver";
}

function selectSession(id) {
  state.sessionId = id;
  if (id) sessionStorage.setItem(KEYS.session, id); else sessionStorage.removeItem(KEYS.session);
  setTitle();
}

function touchSession(id) {
  const index = state.sessions.findIndex((s) => s.id === id);
  if (index > 0) { state.sessions.unshift(...state.sessions.splice(index, 1)); renderSessions(); }
}

async function loadSessions() {
  const sessions = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: "100", ...(cursor ? { cursor } : {}) });
    const page = await apiJson(`/sessions?${query}`);
    sessions.push(...page.sessions);
    cursor = page.next_cursor;
  } while (cursor && sessions.length < 1000);
  state.sessions = sessions;
  renderSessions();
}

function renderSessions() {
  const list = $("sessions");
  const filter = state.filter.trim().toLowerCase();
  const shown = state.sessions.filter((s) => !filter || displayName(s).toLowerCase().includes(filter));
  list.replaceChildren(...shown.map(sessionItem));
  $("sessions-empty").textContent = state.sessions.length ? (shown.length ? "" : t("nav.noMatch")) : t("nav.noSessions");
}

function sessionItem(session) {
  const active = session.id === state.sessionId;
  const open = el("button", { type: "button", class: "session-open", text: displayName(session), title: displayName(session), "aria-current": active ? "page" : null,
    onclick: () => openSession(session.id) });
  const item = el("li", { class: `session-item${active ? " active" : ""}`, dataset: { id: session.id } }, open,
    el("div", { class: "session-actions" },
      iconButton("edit", `${t("nav.rename")}: ${displayName(session)}`, () => startRename(item, session), "rename"),
      iconButton("trash", `${t("nav.delete")}: ${displayName(session)}`, () => deleteSession(session), "delete")));
  return item;
}

function startRename(item, session) {
  const input = el("input", { type: "text", class: "rename-input", maxlength: "200", "aria-label": t("nav.renameLabel") });
  input.value = session.name === DEFAULT_SESSION_NAME ? "" : session.name;
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const name = input.value.trim();
    if (save && name && name !== session.name) {
      try {
        const updated = await apiJson(`/sessions/${session.id}`, { method: "PATCH", json: { name } });
        session.name = updated.name;
        touchSession(session.id);  // the server lists chats by last change: a renamed one comes first
      } catch (error) { showBanner(errorText(error)); }
    }
    renderSessions();
    setTitle();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) { event.preventDefault(); finish(true); }
    else if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
  item.replaceChildren(el("form", { class: "rename-form", onsubmit: (event) => { event.preventDefault(); finish(true); } }, input));
  input.focus();
  input.select();
}

async function deleteSession(session) {
  if (!(await confirmDialog(t("confirm.deleteChat", { name: displayName(session) }), t("confirm.delete")))) return;
  try {
    await api(`/sessions/${session.id}`, { method: "DELETE" });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) { showBanner(errorText(error)); return; }
  }
  state.sessions = state.sessions.filter((s) => s.id !== session.id);
  if (state.sessionId === session.id) newChat();
  renderSessions();
}

function newChat() {
  detachTurn();
  state.view++;
  selectSession(null);
  hideBanner();
  renderSessions();
  renderEmptyState();
  closeSidebar();
  $("input").focus();
}

async function fetchMessages(id) {
  const messages = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: "100", ...(cursor ? { cursor } : {}) });
    const page = await apiJson(`/chatbot/sessions/${id}/messages?${query}`);
    messages.push(...page.messages);
    cursor = page.next_cursor;
  } while (cursor);
  return messages;
}

function openSession(id) {
  const loading = loadSession(id).finally(() => { if (state.loading === loading) state.loading = null; });
  state.loading = loading;
  return loading;
}

async function loadSession(id) {
  detachTurn();
  const view = ++state.view;
  selectSession(id);
  hideBanner();
  renderSessions();
  closeSidebar();
  const box = $("messages");
  box.replaceChildren(el("p", { class: "loading", text: t("common.loading") }));
  try {
    // Runs first: a run that ends between the two reads is then in the messages (its answer is de-duplicated).
    const runs = await apiJson(`/sessions/${id}/runs?limit=1`);
    const messages = await fetchMessages(id);
    if (view !== state.view) return;
    box.replaceChildren(...messages.map(messageNode));
    if (!messages.length) renderEmptyState();
    stickToBottom = true;
    keepScrolled();
    const run = runs.runs[0];
    if (run && ["pending", "running", "interrupted"].includes(run.status)) {
      if ($("messages").querySelector(".empty-state")) box.replaceChildren();
      const live = newLiveAnswer();
      live.runId = run.id;
      live.follow();
    }
  } catch (error) {
    if (view !== state.view) return;
    if (error instanceof ApiError && error.status === 404) {
      state.sessions = state.sessions.filter((s) => s.id !== id);
      newChat();
      return;
    }
    box.replaceChildren();
    showBanner(errorText(error), () => openSession(id));
  }
}

// --- banner and dialogs --------------------------------------------------------------------------------------
function showBanner(text, retry) {
  const banner = $("banner");
  banner.replaceChildren(icon("alert"), el("span", { class: "banner-text", text }));
  if (retry) banner.append(el("button", { type: "button", class: "secondary small", text: t("error.retry"), onclick: () => { hideBanner(); retry(); } }));
  banner.append(iconButton("close", t("common.close"), hideBanner, "small"));
  banner.hidden = false;
}

function hideBanner() { $("banner").hidden = true; $("banner").replaceChildren(); }

function confirmDialog(message, okLabel) {
  const dialog = $("confirm");
  $("confirm-text").textContent = message;
  $("confirm-ok").textContent = okLabel || t("confirm.ok");
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

function openPanel(kind) {
  const dialog = $("panel");
  const body = $("panel-body");
  body.replaceChildren();
  dialog.dataset.kind = kind;
  const titles = { documents: "docs.title", memory: "memory.title", settings: "settings.title" };
  $("panel-title").textContent = t(titles[kind]);
  if (kind === "documents") buildDocuments(body);
  else if (kind === "memory") buildMemory(body);
  else buildSettings(body);
  if (!dialog.open) dialog.showModal();
}

function closePanel() {
  clearTimeout(state.filesTimer);
  state.files = state.files.filter((f) => f.id);
  $("panel-body").replaceChildren();
}

// --- documents -----------------------------------------------------------------------------------------------
function fileName(file) { return file.filename || file.name || file.original_name || file.id; }
function fileReason(file) { return file.error_detail || file.status_detail || file.reason || file.error || ""; }
function fileSize(file) {
  const size = file.size_bytes ?? file.size ?? file.bytes;
  if (typeof size !== "number") return "";
  return size < 1024 ? `${size} B` : size < 1048576 ? `${(size / 1024).toFixed(1)} KB` : `${(size / 1048576).toFixed(1)} MB`;
}

function fileRow(file) {
  const status = file.status || "pending";
  const row = el("li", { class: "doc-item", dataset: { id: file.id || "", status } },
    el("div", { class: "doc-icon", "aria-hidden": "true" }, icon("file")),
    el("div", { class: "doc-main" },
      file.id && status === "ready"
        ? el("button", { type: "button", class: "doc-name link", text: fileName(file), title: `${t("docs.open")}: ${fileName(file)}`, onclick: () => downloadFile(file) })
        : el("div", { class: "doc-name", text: fileName(file), title: fileName(file) }),
      el("div", { class: "doc-meta" },
        el("span", { class: `status status-${status}`, text: t(`docs.status.${status}`) }),
        fileSize(file) ? el("span", { class: "meta", text: fileSize(file) }) : null,
        file.session_id && file.session_id === state.sessionId ? el("span", { class: "meta", text: t("docs.thisChat") }) : null),
      status === "failed" && fileReason(file) ? el("div", { class: "doc-reason", text: fileReason(file) }) : null));
  if (!file.id && status === "failed") {
    row.append(iconButton("close", `${t("common.close")}: ${fileName(file)}`, () => { state.files = state.files.filter((f) => f !== file); renderFiles(); }, "delete"));
  }
  if (file.id && status !== "uploading") {
    row.append(iconButton("trash", `${t("docs.delete")}: ${fileName(file)}`, async () => {
      try { await api(`/files/${file.id}`, { method: "DELETE" }); } catch (error) { if (!(error instanceof ApiError && error.status === 404)) { showBanner(errorText(error)); return; } }
      state.files = state.files.filter((f) => f.id !== file.id);
      renderFiles();
    }, "delete"));
  }
  return row;
}

function renderFiles() {
  const list = $("doc-list");
  if (!list) return;
  list.replaceChildren(...state.files.map(fileRow));
  $("doc-empty").textContent = state.files.length ? "" : t("docs.empty");
}

async function refreshFiles() {
  clearTimeout(state.filesTimer);
  if (!$("doc-list")) return;
  try {
    const page = await apiJson("/files?limit=100");
    // Uploads still going, and those the server refused (they have no id), stay until the panel closes.
    const local = state.files.filter((f) => !f.id);
    state.files = [...local, ...(Array.isArray(page) ? page : page.files || page.items || [])];
    renderFiles();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) { state.features.files = false; applyFeatures(); return; }
  }
  if (state.files.some((f) => ["pending", "processing", "uploading"].includes(f.status))) state.filesTimer = setTimeout(refreshFiles, 1000);
}

function buildDocuments(body) {
  const picker = el("input", { type: "file", id: "file-input", multiple: true, class: "offscreen", tabindex: "-1", "aria-hidden": "true" });
  const attach = el("input", { type: "checkbox", id: "attach-to-session", checked: true });
  const drop = el("div", { class: "dropzone", id: "dropzone" },
    icon("upload"),
    el("p", { text: t("docs.drop") }),
    el("button", { type: "button", class: "primary", id: "upload-button", text: t("docs.upload"), onclick: () => picker.click() }),
    picker);
  picker.addEventListener("change", () => { uploadFiles([...picker.files], attach.checked); picker.value = ""; });
  for (const name of ["dragenter", "dragover"]) drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    event.stopPropagation();
    drop.classList.remove("over");
    uploadFiles([...event.dataTransfer.files], attach.checked);
  });
  body.append(drop,
    el("label", { class: "check" }, attach, el("span", { text: t("docs.attach") })),
    el("ul", { class: "doc-list", id: "doc-list", "aria-live": "polite" }),
    el("p", { class: "empty", id: "doc-empty" }));
  renderFiles();
  refreshFiles();
}

async function uploadFiles(files, attach) {
  if (!files.length) return;
  let sessionId = null;
  if (attach) {
    try { sessionId = state.sessionId || await ensureSession(files[0].name); } catch (error) { showBanner(errorText(error)); return; }
  }
  await Promise.all(files.map(async (file) => {
    const placeholder = { id: "", filename: file.name, status: "uploading", size_bytes: file.size };
    state.files.unshift(placeholder);
    renderFiles();
    const form = new FormData();
    if (sessionId) form.append("session_id", sessionId);
    form.append("file", file);
    try {
      const created = await apiJson("/files", { method: "POST", body: form });
      Object.assign(placeholder, created);
      if (placeholder.status === "uploading") placeholder.status = "pending";
    } catch (error) {
      Object.assign(placeholder, { status: "failed", reason: error instanceof ApiError && error.detail ? error.detail : errorText(error) });
    }
    renderFiles();
  }));
  refreshFiles();
}

// --- memory --------------------------------------------------------------------------------------------------
function buildMemory(body) {
  const search = el("input", { type: "search", id: "memory-search", placeholder: t("memory.search"), "aria-label": t("memory.search"), maxlength: "500" });
  const list = el("ul", { class: "memory-list", id: "memory-list", "aria-live": "polite" });
  const empty = el("p", { class: "empty", id: "memory-empty" });
  const forgetAll = el("button", { type: "button", class: "secondary danger", id: "forget-all", text: t("memory.forgetAll") });
  let timer = null;
  let query = "";
  const load = async () => {
    try {
      const q = search.value.trim();
      query = q;
      const page = q ? await apiJson(`/memories/search?${new URLSearchParams({ q })}`) : await apiJson("/memories");
      if (query !== q) return;
      list.replaceChildren(...page.memories.map((memory) => el("li", { class: "memory-item", dataset: { id: memory.id } },
        el("span", { class: "memory-text", text: memory.text }),
        iconButton("trash", `${t("memory.forget")}: ${memory.text}`, async () => {
          try { await api(`/memories/${memory.id}`, { method: "DELETE" }); } catch (error) { if (!(error instanceof ApiError && error.status === 404)) { showBanner(errorText(error)); return; } }
          load();
        }, "delete"))));
      empty.textContent = page.memories.length ? "" : (q ? t("memory.noMatch") : t("memory.empty"));
      forgetAll.disabled = !page.memories.length && !q;
    } catch (error) { empty.textContent = errorText(error); }
  };
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 250); });
  forgetAll.addEventListener("click", async () => {
    if (!(await confirmDialog(t("memory.confirmAll"), t("memory.forgetAll")))) return;
    try { await api("/memories", { method: "DELETE" }); } catch (error) { showBanner(errorText(error)); }
    search.value = "";
    load();
  });
  body.append(el("p", { class: "intro", text: t("memory.intro") }),
    el("div", { class: "search-box" }, icon("search"), search), list, empty, el("div", { class: "row end" }, forgetAll));
  load();
}

// --- settings ------------------------------------------------------------------------------------------------
function formatDate(value) {
  if (!value) return "";
  return new Date(value).toLocaleString(currentLanguage === "ko" ? "ko-KR" : "en-US", { dateStyle: "medium", timeStyle: "short" });
}

function buildSettings(body) {
  const language = el("select", { id: "language-select", "aria-label": t("settings.language") });
  for (const [code, name] of Object.entries(LANGUAGES)) language.append(el("option", { value: code, text: name }));
  language.value = currentLanguage;
  language.addEventListener("change", () => { chooseLanguage(language.value); openPanel("settings"); });
  const theme = el("select", { id: "theme-select", "aria-label": t("settings.theme") });
  for (const [value, key] of [["system", "settings.themeSystem"], ["light", "settings.themeLight"], ["dark", "settings.themeDark"]]) theme.append(el("option", { value, text: t(key) }));
  theme.value = localStorage.getItem(KEYS.theme) || "system";
  theme.addEventListener("change", () => applyTheme(theme.value, true));

  const keyName = el("input", { type: "text", id: "key-name", maxlength: "100", required: true, placeholder: t("keys.name"), "aria-label": t("keys.name") });
  const created = el("div", { class: "key-created", id: "key-created", hidden: true });
  const keyList = el("ul", { class: "key-list", id: "key-list" });
  const keyEmpty = el("p", { class: "empty" });
  const loadKeys = async () => {
    try {
      const { api_keys: keys } = await apiJson("/auth/api-keys");
      keyList.replaceChildren(...keys.map((key) => el("li", { class: "key-item", dataset: { id: key.id } },
        el("div", { class: "key-main" },
          el("div", { class: "key-name", text: key.name }),
          el("div", { class: "meta" }, el("code", { text: `${key.prefix}…` }), ` · ${formatDate(key.created_at)} · `,
            key.last_used_at ? t("keys.lastUsed", { when: formatDate(key.last_used_at) }) : t("keys.neverUsed"))),
        el("button", { type: "button", class: "secondary danger small", text: t("keys.revoke"), "aria-label": `${t("keys.revoke")}: ${key.name}`,
          onclick: async () => {
            if (!(await confirmDialog(t("keys.confirmRevoke", { name: key.name }), t("keys.revoke")))) return;
            try { await api(`/auth/api-keys/${key.id}`, { method: "DELETE" }); } catch (error) { showBanner(errorText(error)); }
            loadKeys();
          } }))));
      keyEmpty.textContent = keys.length ? "" : t("keys.empty");
    } catch (error) { keyEmpty.textContent = errorText(error); }
  };
  const keyForm = el("form", { class: "row key-form" }, keyName, el("button", { type: "submit", class: "primary", text: t("keys.create") }));
  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const key = await apiJson("/auth/api-keys", { method: "POST", json: { name: keyName.value } });
      keyName.value = "";
      created.replaceChildren(el("p", { text: t("keys.once") }),
        el("div", { class: "secret" }, el("code", { class: "secret-value", text: key.key }), copyButton(() => key.key)));
      created.hidden = false;
      loadKeys();
    } catch (error) { showBanner(errorText(error)); }
  });

  body.append(
    el("section", { class: "settings-section" },
      el("h3", { text: t("settings.account") }),
      el("p", { class: "meta" }, `${t("settings.signedInAs")} `, el("strong", { id: "account-email", text: state.user ? state.user.email : "" })),
      el("div", { class: "row" },
        el("button", { type: "button", class: "secondary", id: "logout", onclick: logout }, icon("logout"), el("span", { text: t("settings.logout") })))),
    el("section", { class: "settings-section grid" },
      el("label", null, el("span", { text: t("settings.language") }), language),
      el("label", null, el("span", { text: t("settings.theme") }), theme)),
    el("section", { class: "settings-section" },
      el("h3", { text: t("keys.title") }),
      el("p", { class: "intro", text: t("keys.intro") }),
      keyForm, created, keyList, keyEmpty),
    el("section", { class: "settings-section danger-zone" },
      el("h3", { text: t("settings.deleteAccount") }),
      el("button", { type: "button", class: "danger", id: "delete-account", text: t("settings.deleteAccount"), onclick: deleteAccount })));
  loadKeys();
}

// --- auth ----------------------------------------------------------------------------------------------------
async function login(register) {
  const email = $("email").value.trim();
  const password = $("password").value;
  const error = $("login-error");
  error.textContent = "";
  if (!$("login-form").reportValidity()) return;
  $("login-form").classList.add("busy");
  try {
    if (register) await api("/auth/register", { method: "POST", json: { email, password } });
    const tokens = await apiJson("/auth/login", { method: "POST", body: new URLSearchParams({ username: email, password }) });
    saveAuth(tokens);
    $("password").value = "";
    await enterApp();
  } catch (failure) {
    error.textContent = failure instanceof ApiError && failure.status !== 429 ? failure.detail || errorText(failure) : errorText(failure);
  } finally {
    $("login-form").classList.remove("busy");
  }
}

async function probe(path) {
  try { return await apiJson(path); } catch (error) {
    if (error instanceof ApiError && [404, 405].includes(error.status)) return null;
    throw error;
  }
}

function applyFeatures() {
  $("open-documents").hidden = !state.features.files;
  $("attach").hidden = !state.features.files;
}

async function enterApp() {
  const generation = state.generation;
  state.user = await apiJson("/auth/me");
  if (generation !== state.generation) return;
  const [assistants, files] = await Promise.all([probe("/assistants?limit=100").catch(() => null), probe("/files?limit=1").catch(() => null)]);
  state.assistants = assistants ? (Array.isArray(assistants) ? assistants : assistants.assistants || assistants.items || []) : [];
  state.features.assistants = Boolean(assistants);
  state.features.files = Boolean(files);
  if (files) state.files = await probe("/files?limit=100").then((page) => (page && page.files) || []).catch(() => []);
  applyFeatures();
  await loadSessions();
  if (generation !== state.generation) return;
  // Shown only now, with everything loaded: nothing the user starts can race the first render.
  $("user-email").textContent = state.user.email;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  const saved = sessionStorage.getItem(KEYS.session);
  if (saved && state.sessions.some((s) => s.id === saved)) await openSession(saved);
  else newChat();
}

function sessionExpired() {
  if (!state.auth) return;
  clearEverything();
  showLogin(t("login.expired"));
}

// Everything of the user goes: tokens, caches, timers, streams and every node that showed their data.
function clearEverything() {
  state.generation++;
  state.view++;
  if (state.turn) state.turn.detach();
  clearTimeout(refreshTimer);
  clearTimeout(state.filesTimer);
  Object.assign(state, { auth: null, user: null, sessions: [], sessionId: null, filter: "", turn: null, loading: null, assistants: [], assistantId: "", files: [] });
  sessionStorage.clear();
  for (const dialog of document.querySelectorAll("dialog")) if (dialog.open) dialog.close();
  for (const id of ["messages", "sessions", "panel-body", "banner", "sessions-empty", "user-email", "composer-hint", "confirm-text", "session-assistant"]) $(id).replaceChildren();
  $("banner").hidden = true;
  $("session-title").textContent = "";
  for (const id of ["input", "session-search", "email", "password"]) $(id).value = "";
  setBusy(false);
  document.title = "agentserver";
}

function showLogin(message) {
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
  $("email").focus();
}

async function logout() {
  // An access token about to expire is renewed first: the logout call needs a valid one to revoke the refresh token.
  if (state.auth && state.auth.expiresAt - Date.now() < 30e3) await refreshTokens().catch(() => {});
  const auth = state.auth;
  if (auth) {
    try {
      await fetch(`${API}/auth/logout`, {
        method: "POST",
        headers: { Authorization: `Bearer ${auth.access}`, "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: auth.refresh }),
      });
    } catch (_) { /* offline: the local state goes anyway; the refresh token expires on its own */ }
  }
  clearEverything();
  showLogin();
}

async function deleteAccount() {
  if (!(await confirmDialog(t("settings.confirmDelete"), t("settings.deleteAccount")))) return;
  try { await api("/auth/me", { method: "DELETE" }); } catch (error) { showBanner(errorText(error)); return; }
  clearEverything();
  showLogin(t("login.deleted"));
}

// --- preferences ---------------------------------------------------------------------------------------------
function effectiveTheme() {
  const chosen = document.documentElement.dataset.theme;
  if (chosen) return chosen;
  return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function applyTheme(theme, remember) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  if (remember) localStorage.setItem(KEYS.theme, theme);
  const toggle = $("theme-toggle");
  if (toggle) toggle.replaceChildren(icon(effectiveTheme() === "dark" ? "sun" : "moon"));
}

function chooseLanguage(language) {
  setLanguage(language);
  localStorage.setItem(KEYS.lang, language);
  translatePage(document);
  $("login-language").value = currentLanguage;
  setBusy(turnActive());
  renderSessions();
  setTitle();
  if ($("messages").querySelector(".empty-state")) renderEmptyState();
}

// --- layout --------------------------------------------------------------------------------------------------
function autosize() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

function openSidebar() {
  document.body.classList.add("sidebar-open");
  $("session-search").focus();
}
function closeSidebar() { document.body.classList.remove("sidebar-open"); }

function setUpDropOnConversation() {
  const conversation = $("conversation");
  let depth = 0;
  const hasFiles = (event) => state.features.files && [...(event.dataTransfer?.types || [])].includes("Files");
  conversation.addEventListener("dragenter", (event) => { if (!hasFiles(event)) return; depth++; conversation.classList.add("dragging"); });
  conversation.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
  conversation.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) conversation.classList.remove("dragging"); });
  conversation.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    conversation.classList.remove("dragging");
    const files = [...event.dataTransfer.files];
    openPanel("documents");
    uploadFiles(files, true);
  });
}

function boot() {
  setLanguage(pickLanguage(localStorage.getItem(KEYS.lang), navigator.languages || [navigator.language]));
  applyTheme(localStorage.getItem(KEYS.theme) || "system");
  translatePage(document);
  const loginLanguage = $("login-language");
  for (const [code, name] of Object.entries(LANGUAGES)) loginLanguage.append(el("option", { value: code, text: name }));
  loginLanguage.value = currentLanguage;
  loginLanguage.addEventListener("change", () => chooseLanguage(loginLanguage.value));
  $("login-form").addEventListener("submit", (event) => { event.preventDefault(); login(false); });
  $("register-button").addEventListener("click", () => login(true));
  $("new-session").addEventListener("click", newChat);
  $("session-search").addEventListener("input", (event) => { state.filter = event.target.value; renderSessions(); });
  $("open-documents").addEventListener("click", () => openPanel("documents"));
  $("attach").addEventListener("click", () => openPanel("documents"));
  $("open-memory").addEventListener("click", () => openPanel("memory"));
  $("open-settings").addEventListener("click", () => openPanel("settings"));
  $("open-settings-side").addEventListener("click", () => openPanel("settings"));
  $("theme-toggle").addEventListener("click", () => applyTheme(effectiveTheme() === "dark" ? "light" : "dark", true));
  $("menu-button").addEventListener("click", openSidebar);
  $("close-sidebar").addEventListener("click", closeSidebar);
  $("scrim").addEventListener("click", closeSidebar);
  $("panel-close").addEventListener("click", () => $("panel").close());
  $("panel").addEventListener("close", closePanel);
  $("confirm-cancel").addEventListener("click", () => $("confirm").close("cancel"));
  $("confirm-ok").addEventListener("click", () => $("confirm").close("ok"));
  $("messages").addEventListener("scroll", () => { stickToBottom = nearBottom(); });
  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (turnActive()) stop(); else send($("input").value);
  });
  $("input").addEventListener("input", autosize);
  $("input").addEventListener("keydown", (event) => {
    // isComposing: Enter that ends a Korean (IME) syllable must not send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!turnActive()) send($("input").value);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
    if (turnActive()) { event.preventDefault(); stop(); } else closeSidebar();
  });
  setUpDropOnConversation();
  setBusy(false);
  const saved = sessionStorage.getItem(KEYS.auth);
  if (saved) {
    try { state.auth = JSON.parse(saved); } catch (_) { state.auth = null; }
  }
  if (state.auth) {
    scheduleRefresh();
    enterApp().catch((error) => {
      if (error instanceof OfflineError) { showLogin(t("error.offline")); return; }
      if (!state.auth) return;  // the session had ended: sessionExpired() already said so
      clearEverything();
      showLogin(errorText(error));
    });
  } else showLogin();
}

document.addEventListener("DOMContentLoaded", boot);
