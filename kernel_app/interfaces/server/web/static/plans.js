// /plan in the chat: the planner's plan as steps whose arguments the analyst can edit, then approve
// (the edited plan is checked again on the server before it runs) or reject (it never runs). An
// approved plan streams its progress: a line per step as it starts ("Step 2 of 3: F, running…"), its
// result rendered as it ends, a failed step's error, then the plan's result; the status line says which
// step runs. A plan executed into a conversation is shown again, with its steps, when the page reloads.

import { ApiError, get, post, render, stream } from "./api.js";
import { el, notify, showRendered, unique } from "./ui.js";

const LOOK_AGAIN_MS = 2000; // a plan still running when the page was (re)loaded: how often to look at it

export async function proposePlan(goal, conversationId, thread, setStatus) {
  setStatus("Planning…");
  let proposed;
  try {
    proposed = await post("/v1/plans", { goal });
  } finally {
    setStatus("");
  }
  const card = planCard(proposed, conversationId, setStatus);
  thread.append(card.node);
  return card.focus; // the caller focuses the plan's first field once it is done with the message box
}

// A value as the analyst edits it: text as it is, anything else (numbers, lists) as JSON.
function shown(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// The edited text back as the step's value: text stays text; other values parse as JSON when they can.
function read(text, original) {
  if (typeof original === "string") return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function planCard(proposed, conversationId, setStatus) {
  const plan = proposed.plan;
  const headingId = unique("plan");
  const inputs = [];
  const steps = el("ol", { class: "steps" });
  (plan?.steps || []).forEach((step, number) => {
    const fields = el("div", { class: "step-args" });
    for (const [name, value] of Object.entries(step.args)) {
      const id = unique("arg");
      const input = el("input", {
        id,
        type: "text",
        value: shown(value),
        "aria-label": `Step ${number + 1}, ${step.function}: ${name}`,
      });
      inputs.push({ input, step: number, name, original: value });
      fields.append(el("div", { class: "field" }, el("label", { for: id, text: name }), input));
    }
    steps.append(
      el(
        "li",
        { class: "step" },
        el("p", {}, el("code", { text: step.function }), el("span", { text: ` → $${step.output}` })),
        fields,
      ),
    );
  });
  const approve = el("button", { type: "submit", class: "approve", text: "Approve and run" });
  const reject = el("button", { type: "button", class: "deny", text: "Reject" });
  const outcome = el("div", { class: "rendered outcome", role: "status" });
  const form = el("form", { class: "plan-form" }, steps, el("div", { class: "buttons" }, approve, reject));
  const node = el(
    "li",
    { class: "plan", "aria-labelledby": headingId },
    el("h2", { id: headingId, text: `Plan: ${proposed.goal}` }),
    plan ? form : el("p", { text: proposed.text }),
    outcome,
  );
  if (!plan) form.append(approve);

  const edited = () => {
    const copy = structuredClone(plan);
    for (const { input, step, name, original } of inputs) copy.steps[step].args[name] = read(input.value, original);
    return copy;
  };
  const settle = (text) => {
    approve.disabled = reject.disabled = true;
    for (const { input } of inputs) input.readOnly = true;
    outcome.textContent = text;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    approve.disabled = reject.disabled = true;
    setStatus("Running the plan…");
    const progress = stepLog();
    node.insertBefore(progress.node, outcome);
    progress.focus(); // the button just pressed is disabled: keyboard and screen reader users go on here
    let answered = false; // the server took the plan: from here on it runs whatever happens to this page
    let finished = null;
    try {
      const body = { conversation_id: conversationId, ...(plan ? { plan: edited() } : {}) };
      await stream(`/v1/plans/${encodeURIComponent(proposed.id)}/execute`, body, (event) => {
        answered = true;
        if (event.type === "plan_finished") finished = event;
        else progress.show(event, setStatus);
      });
    } catch (error) {
      if (!answered && error instanceof ApiError) {
        progress.node.remove();
        approve.disabled = reject.disabled = false; // a 400 names what to fix; the plan still waits
        setStatus("");
        notify(error);
        approve.focus();
        return;
      }
    }
    settle("");
    if (finished) await showOutcome(outcome, finished, setStatus);
    else await awaitOutcome(proposed.id, progress, outcome, setStatus);
    // Ready for the next message, as after an answer (unless the user went elsewhere meanwhile).
    if (document.activeElement === document.body || node.contains(document.activeElement)) {
      document.getElementById("message")?.focus();
    }
  });
  reject.addEventListener("click", async () => {
    try {
      await post(`/v1/plans/${encodeURIComponent(proposed.id)}/reject`);
      settle("Plan rejected: nothing ran.");
    } catch (error) {
      notify(error);
    }
  });
  return { node, focus: () => (inputs[0]?.input || approve).focus() };
}

// The plans executed into a conversation (oldest first), with their steps' results.
export async function executedPlans(conversationId) {
  const found = await get(`/v1/plans?conversation_id=${encodeURIComponent(conversationId)}`);
  return found.data;
}

// A plan that was executed (the page was reloaded, or the conversation opened again): its steps as they
// ran and its result; one still running is looked at again until it ends.
export function pastPlanCard(ran, setStatus) {
  const headingId = unique("plan");
  const outcome = el("div", { class: "rendered outcome", role: "status" });
  const node = el(
    "li",
    { class: "plan", "aria-labelledby": headingId },
    el("h2", { id: headingId, text: `Plan: ${ran.goal}` }),
  );
  const progress = stepLog();
  node.append(progress.node, outcome);
  showKept(progress, ran, null);
  if (ran.status === "running") awaitOutcome(ran.id, progress, outcome, setStatus);
  else showOutcome(outcome, ran, null).catch(notify);
  return node;
}

// The list of step lines in a plan card, and how an event changes it: a started step gets a line, a
// finished one its state and its result rendered on the server (as answers are), a failed one its error.
function stepLog() {
  const titleId = unique("progress");
  const list = el("ol", { class: "step-log", "aria-labelledby": titleId });
  const title = el("h3", { id: titleId, text: "Steps", tabindex: "-1" });
  const node = el("div", { class: "progress", hidden: true }, title, list);
  const lines = new Map();
  const lineOf = (event) => {
    node.hidden = false; // shown from the first step on (a function-calling goal has none)
    if (!lines.has(event.step)) {
      const state = el("p", { class: "step-state" });
      const output = el("div", { class: "rendered step-output" });
      const item = el("li", { class: "step-line", "data-step": event.step }, state, output);
      // In plan order, though steps that read nothing of each other may start together.
      const after = [...lines.keys()].filter((number) => number > event.step).sort((a, b) => a - b)[0];
      list.insertBefore(item, after === undefined ? null : lines.get(after).item);
      lines.set(event.step, { item, state, output });
    }
    return lines.get(event.step);
  };
  const show = (event, setStatus) => {
    const name = `Step ${event.step} of ${event.total}: ${event.function}`;
    const line = lineOf(event);
    const state = event.type === "plan_step_started" ? "running" : event.ok ? "done" : "failed";
    if (line.item.dataset.state === state) return; // a record looked at again: nothing new for this step
    line.item.dataset.state = state;
    if (event.type === "plan_step_started") {
      line.state.textContent = `${name}, running…`;
      if (setStatus) setStatus(`Running step ${event.step} of ${event.total}: ${event.function}…`);
    } else if (event.type === "plan_step_finished" && event.ok) {
      const last = event.step === event.total; // its output is the plan's result, shown once, below
      line.state.textContent = `${name}, done in ${Number(event.seconds).toFixed(1)} s${last ? ": the result is below" : ""}`;
      if (!last) showRendered(line.output, event.output || "(no output)", render).catch(notify);
      if (setStatus) setStatus(`Step ${event.step} of ${event.total} done: ${event.function}`);
    } else if (event.type === "plan_step_finished") {
      line.state.replaceChildren(el("span", { class: "error", text: `${name}, ${event.error}` }));
      if (setStatus) setStatus(`Step ${event.step} of ${event.total} failed: ${event.function}`);
    }
  };
  const focus = () => {
    node.hidden = false;
    title.focus();
  };
  return { node, show, focus };
}

async function showOutcome(outcome, ran, setStatus) {
  if (ran.status === "done") {
    if (!outcome.previousElementSibling?.classList.contains("result-title")) {
      outcome.before(el("h3", { class: "result-title", text: "Result" }));
    }
    await showRendered(outcome, ran.result || "(no result)", render);
    if (setStatus) setStatus("The plan is done.");
  } else {
    const why = ran.error || ran.status;
    outcome.replaceChildren(el("p", { class: "error", text: `The plan did not finish: ${why}` }));
    if (setStatus) setStatus("The plan did not finish.");
  }
}

// The steps as the plan's record keeps them (those that ran, and while it runs those running) as events.
function showKept(progress, ran, setStatus) {
  const total = ran.plan?.steps?.length || ran.steps.length;
  for (const step of ran.steps) {
    const type = step.status === "running" ? "plan_step_started" : "plan_step_finished";
    progress.show({ ...step, type, total }, setStatus);
  }
}

// The events stopped before the plan ended (the connection was cut): it goes on on the server, so look
// at its record until it ends, then show its steps as it kept them.
async function awaitOutcome(planId, progress, outcome, setStatus) {
  outcome.textContent = "The plan is still running…";
  for (;;) {
    let ran;
    try {
      ran = await get(`/v1/plans/${encodeURIComponent(planId)}`);
    } catch (error) {
      notify(error);
      return;
    }
    if (!outcome.isConnected) return; // another conversation was opened meanwhile
    showKept(progress, ran, ran.status === "running" ? setStatus : null);
    if (ran.status !== "running") {
      await showOutcome(outcome, ran, setStatus);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, LOOK_AGAIN_MS));
  }
}
