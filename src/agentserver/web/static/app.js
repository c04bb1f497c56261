// agentserver web chat. Renders everything with textContent: no server or model text is ever parsed as HTML.
"use strict";

const API = "/api/v1";
const state = { token: sessionStorage.getItem("access_token"), sessionId: null, busy: false };
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(API + path, { ...options, headers });
  if (response.status === 401 && path !== "/auth/login") { logout(); throw new Error("Please log in again."); }
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try { const body = await response.json(); detail = body.detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response.status === 204 ? null : response;
}

async function login(register) {
  const email = $("email").value, password = $("password").value;
  $("login-error").textContent = "";
  try {
    if (register) {
      await api("/auth/register", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email, password }) });
    }
    const form = new URLSearchParams({ username: email, password });
    const tokens = await (await api("/auth/login", { method: "POST", body: form })).json();
    state.token = tokens.access_token;
    sessionStorage.setItem("access_token", state.token);
    await showChat();
  } catch (error) { $("login-error").textContent = error.message; }
}

function logout() {
  state.token = null; state.sessionId = null;
  sessionStorage.removeItem("access_token");
  $("chat-view").hidden = true; $("login-view").hidden = false;
}

async function showChat() {
  $("login-view").hidden = true; $("chat-view").hidden = false;
  await loadAssistants();
  const sessions = await loadSessions();
  if (sessions.length) await openSession(sessions[0].id); else await newSession();
}

async function loadSessions() {
  const { sessions } = await (await api("/sessions?limit=50")).json();
  const list = $("sessions");
  list.replaceChildren();
  for (const session of sessions) {
    const item = document.createElement("li");
    item.textContent = session.name;
    item.title = session.name;
    item.dataset.id = session.id;
    item.classList.toggle("active", session.id === state.sessionId);
    item.addEventListener("click", () => openSession(session.id));
    list.append(item);
  }
  return sessions;
}

// The assistants the user can start a chat with (the deployment's, then their own); a chat keeps its assistant.
async function loadAssistants() {
  const { assistants } = await (await api("/assistants")).json();
  const select = $("assistant");
  select.replaceChildren();
  for (const assistant of assistants) {
    const option = document.createElement("option");
    option.value = assistant.id;
    option.textContent = assistant.name;
    option.title = assistant.description || "";
    select.append(option);
  }
}

async function newSession() {
  const body = JSON.stringify($("assistant").value ? { assistant_id: $("assistant").value } : {});
  const session = await (await api("/sessions", { method: "POST", headers: { "Content-Type": "application/json" }, body })).json();
  await openSession(session.id);
}

async function openSession(id) {
  state.sessionId = id;
  $("messages").replaceChildren();
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: "100", ...(cursor ? { cursor } : {}) });
    const page = await (await api(`/chatbot/sessions/${id}/messages?${query}`)).json();
    for (const message of page.messages) addMessage(message.role, message.content);
    cursor = page.next_cursor;
  } while (cursor);
  await loadSessions();
}

function addMessage(role, text) {
  const bubble = document.createElement("div");
  bubble.className = `msg ${role}`;
  const body = document.createElement("span");
  body.textContent = text || "";
  bubble.append(body);
  $("messages").append(bubble);
  bubble.scrollIntoView({ block: "end" });
  return { bubble, body };
}

function addNote(bubble, className, text) {
  const note = document.createElement("span");
  note.className = className;
  note.textContent = text;
  bubble.append(note);
}

// The answer as it streams. `reset` (a retried or fallback model call restarts the answer) drops what
// the current call streamed; text from before a tool call is kept. `apply` says whether the text changed.
class AnswerText {
  constructor() { this.kept = ""; this.current = ""; }
  apply(name, data) {
    if (name === "token") this.current += data.content;
    else if (name === "reset") this.current = "";
    else if (name === "tool_call") { this.kept += this.current; this.current = ""; return false; }
    else return false;
    return true;
  }
  get text() { return this.kept + this.current; }
}

async function send(event) {
  event.preventDefault();
  const text = $("input").value;
  if (!text.trim() || state.busy || !state.sessionId) return;
  state.busy = true; $("send").disabled = true; $("chat-error").textContent = "";
  $("input").value = "";
  addMessage("user", text);
  const { bubble, body } = addMessage("assistant", "");
  try {
    const response = await api("/chatbot/chat/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session_id: state.sessionId, message: text }),
    });
    await readEvents(response, renderer(bubble, body, new AnswerText()));
  } catch (error) {
    $("chat-error").textContent = error.message;
  } finally {
    state.busy = false; $("send").disabled = false; $("input").focus();
  }
}

// What one answer's events do to its bubble. A tool call waiting for approval gets Approve / Reject
// buttons; the decision resumes the run and its events, after the pause, render into the same bubble.
function renderer(bubble, body, answer) {
  return (name, data, id) => {
    if (answer.apply(name, data)) body.textContent = answer.text;
    if (name === "tool_call") addNote(bubble, "tool", `→ ${data.name}(${JSON.stringify(data.args)})`);
    else if (name === "tool_result") addNote(bubble, "tool", `← ${data.content}`);
    else if (name === "done") {
      const usage = data.usage || {};
      const reason = data.finish_reason && data.finish_reason !== "complete" ? ` · ${data.finish_reason}` : "";
      addNote(bubble, "meta", `${usage.output_tokens || 0} tokens · ${usage.model || "no model call"}${reason}`);
    }
    else if (name === "approval_required") {
      addNote(bubble, "tool", `⏸ waiting for approval: ${data.tool}(${JSON.stringify(data.args)})`);
      askDecision(bubble, body, answer, data.run_id, id);
    }
    else if (name === "error") $("chat-error").textContent = data.detail;
    bubble.scrollIntoView({ block: "end" });
  };
}

function askDecision(bubble, body, answer, runId, eventId) {
  const row = document.createElement("span");
  row.className = "decide";
  for (const decision of ["approve", "reject"]) {
    const button = document.createElement("button");
    button.textContent = decision === "approve" ? "Approve" : "Reject";
    button.className = decision === "approve" ? "" : "secondary";
    button.addEventListener("click", async () => {
      row.remove();
      state.busy = true; $("send").disabled = true; $("chat-error").textContent = "";
      try {
        await api(`/runs/${runId}/resume`, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ decision }),
        });
        const after = eventId ? `?after=${encodeURIComponent(eventId)}` : "";
        await readEvents(await api(`/runs/${runId}/stream${after}`), renderer(bubble, body, answer));
      } catch (error) {
        $("chat-error").textContent = error.message;
      } finally {
        state.busy = false; $("send").disabled = false;
      }
    });
    row.append(button);
  }
  bubble.append(row);
}

// Server-Sent Events over fetch (EventSource cannot POST): frames are "event: x\ndata: {...}\n\n".
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
        else if (line.startsWith("id: ")) id = line.slice(4);
      }
      if (data) onEvent(name, JSON.parse(data), id);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => { event.preventDefault(); login(false); });
  $("register-button").addEventListener("click", () => login(true));
  $("logout").addEventListener("click", logout);
  $("new-session").addEventListener("click", () => newSession().catch((e) => { $("chat-error").textContent = e.message; }));
  $("send-form").addEventListener("submit", send);
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });
  if (state.token) showChat().catch(logout);
});
