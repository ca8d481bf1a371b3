// The chat view: conversations from the engine's store (what `kernel-app chat --list` and REST see),
// a message streamed over the REST API's server-sent events and rendered as markdown by the server,
// a status line for function calls and plan steps, approval buttons, and /plan as an editable plan (and,
// when a conversation opens, the plans executed into it, with their steps, where they ran).

import { get, post, render, stream } from "./api.js";
import { $, el, notify, showRendered, unique } from "./ui.js";
import { executedPlans, pastPlanCard, proposePlan } from "./plans.js";

const RENDER_EVERY_MS = 400; // while an answer streams, its rendering catches up this often

let current = null; // the open conversation: {id, title}
let busy = false;

export function setup() {
  $("message-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $("new-conversation").addEventListener("click", () => {
    location.hash = "#chat";
    startNew();
  });
}

export function startNew() {
  current = null;
  $("conversation-title").textContent = "New conversation";
  $("thread").replaceChildren();
  setStatus("");
  markCurrent();
  $("message").focus();
}

export async function listConversations() {
  const found = await get("/v1/conversations?limit=100");
  const list = $("conversation-list");
  list.replaceChildren(
    ...found.data.map((conversation) =>
      el(
        "li",
        {},
        el("a", {
          href: `#chat/${encodeURIComponent(conversation.id)}`,
          "data-id": conversation.id,
          text: conversation.title || "(untitled)",
        }),
        el("span", { class: "when", text: ` ${new Date(conversation.updated_at * 1000).toLocaleString()}` }),
      ),
    ),
  );
  markCurrent();
}

function markCurrent() {
  for (const link of $("conversation-list").querySelectorAll("a")) {
    if (current && link.dataset.id === current.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

export async function open(id) {
  if (current && current.id === id) return;
  const conversation = await get(`/v1/conversations/${encodeURIComponent(id)}`);
  current = { id: conversation.id, title: conversation.title };
  $("conversation-title").textContent = conversation.title || "(untitled)";
  const thread = $("thread");
  thread.replaceChildren();
  const answers = [];
  let plans = await executedPlans(conversation.id);
  joinPlans(plans, conversation.messages);
  // Plan cards where they ran: a done plan where its messages are, another (failed, still running) by time.
  const placeBefore = (message) => {
    const here = plans.filter((ran) =>
      ran.joinedAt === undefined ? ran.created_at <= message.created_at : ran.joinedAt === message.seq,
    );
    plans = plans.filter((ran) => !here.includes(ran));
    for (const ran of here) thread.append(pastPlanCard(ran, setStatus));
  };
  for (const message of conversation.messages) {
    placeBefore(message);
    if (message.planned) continue; // the plan's card shows its goal and result
    if (message.role === "user") thread.append(userItem(message.content));
    else if (message.role === "assistant" && message.tool_calls) {
      for (const called of message.tool_calls) thread.append(noteItem(`Called ${called.function}`));
    } else if (message.role === "assistant" && message.content) {
      const item = answerItem();
      item.body.textContent = message.content;
      answers.push([item, message.content]);
      thread.append(item.node);
    }
  }
  for (const ran of plans) thread.append(pastPlanCard(ran, setStatus));
  if (answers.length) {
    const html = await render(answers.map(([, text]) => text));
    answers.forEach(([item, text], index) => {
      item.body.innerHTML = html[index]; // the server's renderer: raw HTML escaped
      item.body.classList.remove("draft");
      item.node.dataset.done = "true";
      item.finish(text);
    });
  }
  setStatus("");
  markCurrent();
}

// A plan that ran joins the conversation as two messages, "(planned and ran: GOAL)" and its result (as
// the REPL's /plan does): mark them, and the plan, so that its card stands where they were.
function joinPlans(plans, messages) {
  messages.forEach((message, index) => {
    const next = messages[index + 1];
    if (message.role !== "user" || next?.role !== "assistant") return;
    const ran = plans.find(
      (plan) =>
        plan.joinedAt === undefined &&
        plan.status === "done" && message.content === `(planned and ran: ${plan.goal})` &&
        next.content === plan.result,
    );
    if (!ran) return;
    ran.joinedAt = message.seq;
    message.planned = next.planned = true;
  });
}

function setStatus(text) {
  $("status").textContent = text;
}

function userItem(text) {
  return el("li", { class: "message user" }, el("p", { class: "who", text: "You" }), el("p", { class: "said", text }));
}

function noteItem(text, failed = false) {
  return el("li", { class: failed ? "note failed" : "note", text });
}

// An answer in the thread: its body (a draft while it streams, then the rendering) and, once it is
// whole, a form that saves it to memory.
function answerItem() {
  const body = el("div", { class: "rendered draft" });
  const node = el("li", { class: "message assistant" }, el("p", { class: "who", text: "Assistant" }), body);
  return { node, body, finish: (text) => node.append(saveForm(text)) };
}

function saveForm(text) {
  const id = unique("save");
  const input = el("input", { id, type: "text", value: $("collection").value || "notes", size: 12 });
  const result = el("span", { class: "saved", role: "status" });
  const form = el(
    "form",
    { class: "save" },
    el("label", { for: id, text: "Collection" }),
    input,
    el("button", { type: "submit", text: "Save to memory" }),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const collection = input.value.trim() || "notes";
    try {
      const metadata = current ? { conversation_id: current.id } : {};
      const saved = await post(`/v1/memory/${encodeURIComponent(collection)}/records`, {
        text,
        description: current?.title || "",
        metadata,
      });
      result.replaceChildren(
        "Saved as ",
        el("a", { href: `#record/${encodeURIComponent(collection)}/${encodeURIComponent(saved.id)}`, text: saved.id }),
      );
    } catch (error) {
      notify(error);
    }
  });
  return form;
}

async function send() {
  const box = $("message");
  const text = box.value.trim();
  if (!text || busy) return;
  busy = true;
  $("send").disabled = true;
  let focusNext = () => box.focus(); // after an answer, the next message; after a plan, the plan
  try {
    if (!current) {
      const created = await post("/v1/conversations", { title: text.replace(/^\/plan\s+/, "").slice(0, 60) });
      current = { id: created.id, title: created.title };
      $("conversation-title").textContent = created.title || "(untitled)";
      history.replaceState(null, "", `#chat/${encodeURIComponent(created.id)}`);
    }
    box.value = "";
    $("thread").append(userItem(text));
    const plan = text.match(/^\/plan\s+([\s\S]+)/);
    if (plan) focusNext = await proposePlan(plan[1].trim(), current.id, $("thread"), setStatus);
    else await converse(text);
    await listConversations();
  } catch (error) {
    setStatus("");
    notify(error);
  } finally {
    busy = false;
    $("send").disabled = false;
    focusNext();
  }
}

async function converse(text) {
  const thread = $("thread");
  const answer = answerItem();
  thread.append(answer.node);
  let draft = "";
  let timer = null;
  let ended = false; // done or error came: anything else is a stream cut short
  const catchUp = () => {
    timer = null;
    showRendered(answer.body, draft, render).catch(notify);
  };
  setStatus("Thinking…");
  await stream(`/v1/conversations/${encodeURIComponent(current.id)}/messages`, { content: text }, (event) => {
    switch (event.type) {
      case "text_delta":
        draft += event.text;
        if (answer.body.classList.contains("draft")) answer.body.textContent = draft;
        if (!timer) timer = setTimeout(catchUp, RENDER_EVERY_MS);
        setStatus("Writing…");
        break;
      case "function_call_started":
        setStatus(`Running ${event.function}…`);
        break;
      case "approval_needed":
        setStatus(`${event.function} waits for your approval`);
        thread.insertBefore(approvalItem(event), answer.node);
        break;
      case "function_call_finished":
        thread.insertBefore(
          noteItem(event.ok ? `${event.function} finished` : `${event.function}: ${event.result}`, !event.ok),
          answer.node,
        );
        setStatus(event.ok ? `${event.function} finished` : `${event.function} did not run`);
        break;
      case "progress":
        setStatus(event.done ? "" : `${event.text}…`);
        break;
      case "error":
        ended = true;
        clearTimeout(timer);
        timer = null;
        answer.body.classList.remove("draft");
        answer.body.replaceChildren(el("p", { class: "error", text: `Sorry, that did not work: ${event.message}` }));
        setStatus("");
        break;
      case "done":
        ended = true;
        clearTimeout(timer);
        timer = null;
        draft = event.text;
        showRendered(answer.body, event.text, render)
          .then(() => (answer.node.dataset.done = "true"))
          .catch(notify);
        answer.finish(event.text);
        setStatus(event.finish_reason === "length" ? "The answer reached its length limit." : "");
        break;
      default:
        break;
    }
  });
  if (!ended) {
    clearTimeout(timer);
    answer.body.classList.remove("draft");
    answer.body.append(el("p", { class: "error", text: "The answer was cut short: ask again to go on." }));
    setStatus("");
  }
}

function approvalItem(event) {
  const args = Object.entries(event.arguments || {})
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
    .join(", ");
  const what = event.effect === "model" ? "asks the model (it costs tokens)" : "changes something";
  const outcome = el("p", { class: "outcome", role: "status" });
  const approve = el("button", { type: "button", class: "approve", text: `Approve ${event.function}` });
  const deny = el("button", { type: "button", class: "deny", text: "Deny" });
  const answerWith = async (approved) => {
    approve.disabled = deny.disabled = true;
    try {
      await post(
        `/v1/conversations/${encodeURIComponent(current.id)}/approvals/${encodeURIComponent(event.approval_id)}`,
        { approved },
      );
      outcome.textContent = approved ? "Approved." : "Denied: it does not run.";
      setStatus(approved ? `Running ${event.function}…` : "");
    } catch (error) {
      approve.disabled = deny.disabled = false;
      notify(error);
    }
    $("message").focus();
  };
  approve.addEventListener("click", () => answerWith(true));
  deny.addEventListener("click", () => answerWith(false));
  const node = el(
    "li",
    { class: "approval" },
    el("p", { text: `The assistant wants to run ${event.function}, which ${what}:` }),
    el("pre", { text: `${event.function}(${args})` }),
    el("div", { class: "buttons" }, approve, deny),
    outcome,
  );
  queueMicrotask(() => approve.focus());
  return node;
}
