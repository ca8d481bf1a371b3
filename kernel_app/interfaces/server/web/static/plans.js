// /plan in the chat: the planner's plan as steps whose arguments the analyst can edit, then approve
// (the edited plan is checked again on the server before it runs) or reject (it never runs).

import { post, render } from "./api.js";
import { el, notify, showRendered, unique } from "./ui.js";

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
  card.focus();
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
    try {
      const body = { conversation_id: conversationId, ...(plan ? { plan: edited() } : {}) };
      const ran = await post(`/v1/plans/${encodeURIComponent(proposed.id)}/execute`, body);
      settle("");
      await showRendered(outcome, ran.result || "(no result)", render);
    } catch (error) {
      approve.disabled = reject.disabled = false; // a 400 names what to fix; the plan still waits
      notify(error);
    } finally {
      setStatus("");
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
