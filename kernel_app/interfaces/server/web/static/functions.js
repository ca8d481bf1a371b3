// The function runner: pick a function, fill the form made from its parameters (names, descriptions,
// defaults, required), run it, and read its output rendered: what a plugin author uses to try a folder.

import { get, render, stream } from "./api.js";
import { $, el, notify, showRendered } from "./ui.js";

let catalogue = null; // name -> the function as GET /v1/functions describes it

export function setup() {
  $("function-select").addEventListener("change", () => showForm($("function-select").value));
  $("function-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
}

export async function show(name) {
  if (!catalogue) {
    const found = await get("/v1/functions");
    catalogue = new Map(found.data.map((fn) => [fn.name, fn]));
    const byPlugin = new Map();
    for (const fn of found.data) {
      if (!byPlugin.has(fn.plugin)) byPlugin.set(fn.plugin, el("optgroup", { label: fn.plugin }));
      byPlugin.get(fn.plugin).append(el("option", { value: fn.name, text: fn.name }));
    }
    $("function-select").replaceChildren(...byPlugin.values());
  }
  const chosen = name && catalogue.has(name) ? name : $("function-select").value;
  $("function-select").value = chosen;
  showForm(chosen);
}

function showForm(name) {
  const fn = catalogue.get(name);
  const fields = $("function-fields");
  $("function-output").replaceChildren();
  $("function-status").textContent = "";
  if (!fn) {
    fields.replaceChildren();
    $("function-about").textContent = "No functions are loaded.";
    return;
  }
  $("function-about").textContent = `${fn.description || "(no description)"} (${fn.kind} function, effect ${fn.effect})`;
  fields.replaceChildren(
    ...fn.parameters.map((parameter) => {
      const id = `param-${parameter.name}`;
      const hint = parameter.description ? `${id}-hint` : null;
      const big = parameter.name === "input";
      const value = parameter.default === null || parameter.default === undefined ? "" : String(parameter.default);
      const input = el(big ? "textarea" : "input", {
        id,
        name: parameter.name,
        required: parameter.required,
        "aria-describedby": hint,
        ...(big ? { rows: 4 } : { type: "text", value }),
      });
      if (big) input.value = value;
      return el(
        "div",
        { class: "field" },
        el("label", { for: id, text: parameter.name + (parameter.required ? " (required)" : "") }),
        input,
        hint ? el("p", { id: hint, class: "hint", text: parameter.description }) : null,
      );
    }),
  );
}

async function run() {
  const name = $("function-select").value;
  const fn = catalogue.get(name);
  const body = { arguments: {}, stream: true };
  for (const parameter of fn.parameters) {
    const value = $(`param-${parameter.name}`).value;
    if (value === "" && !parameter.required) continue;
    if (parameter.name === "input") body.input = value;
    else body.arguments[parameter.name] = value;
  }
  const output = $("function-output");
  const status = $("function-status");
  output.replaceChildren();
  output.classList.add("draft");
  let draft = "";
  status.textContent = `Running ${name}…`;
  try {
    await stream(`/v1/functions/${encodeURIComponent(name)}/invoke`, body, (event) => {
      if (event.type === "text_delta") {
        draft += event.text;
        output.textContent = draft;
      } else if (event.type === "error") {
        status.textContent = `${name} failed: ${event.message}`;
      } else if (event.type === "done") {
        status.textContent = `${name} finished.`;
        showRendered(output, event.text || "(no output)", render).catch(notify);
      }
    });
  } catch (error) {
    status.textContent = "";
    notify(error);
  }
}
