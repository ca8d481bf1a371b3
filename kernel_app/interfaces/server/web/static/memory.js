// Memory: upload documents (an upload progress bar, then the ingestion's progress), ask a question
// answered only from the collection with its sources as links to the records, and a record's page.

import { get, post, render, upload } from "./api.js";
import { $, el, notify, showRendered } from "./ui.js";

function collection() {
  return $("collection").value.trim() || "notes";
}

export function setup() {
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ask();
  });
}

export async function show() {
  const found = await get("/v1/memory");
  $("collection-names").replaceChildren(
    ...found.data.map((c) => el("option", { value: c.name, text: `${c.name} (${c.count})` })),
  );
}

async function send() {
  const files = $("documents").files;
  const status = $("upload-status");
  const bar = $("upload-progress");
  if (!files.length) {
    status.textContent = "Choose one or more documents first.";
    $("documents").focus();
    return;
  }
  const form = new FormData();
  for (const file of files) form.append("files", file);
  bar.hidden = false;
  bar.value = 0;
  status.textContent = `Uploading ${files.length} document(s)…`;
  const name = collection();
  try {
    await upload(
      `/v1/memory/${encodeURIComponent(name)}/documents?stream=true`,
      form,
      (fraction) => {
        bar.value = Math.round(fraction * 100);
        if (fraction >= 1) status.textContent = "Uploaded; reading the documents…";
      },
      (event) => {
        if (event.type === "ingest_progress") status.textContent = `${event.file}: ${event.done}/${event.total}`;
        else if (event.type === "error") status.textContent = `Failed: ${event.message}`;
        else if (event.type === "done") {
          const failed = event.failed.map((f) => `${f.file} (${f.reason})`).join(", ");
          status.textContent =
            `Saved ${event.chunks} passage(s) from ${event.added} document(s) in ${name}` +
            (event.skipped_unchanged ? `; ${event.skipped_unchanged} unchanged` : "") +
            (failed ? `; failed: ${failed}` : ".");
        }
      },
    );
    bar.value = 100;
    await show();
  } catch (error) {
    status.textContent = "";
    notify(error);
  }
}

// The start of a record as plain words: a saved answer's table pipes and heading marks are no reading.
function preview(text) {
  const words = text.replace(/-{3,}/g, " ").replace(/[#*_`>|]/g, " ").replace(/\s+/g, " ").trim();
  return words.length > 140 ? `${words.slice(0, 139)}…` : words;
}

async function ask() {
  const question = $("question").value.trim();
  if (!question) return;
  const name = collection();
  const status = $("ask-status");
  status.textContent = "Looking it up…";
  $("sources").replaceChildren();
  $("sources-title").hidden = true;
  try {
    const answer = await post(`/v1/memory/${encodeURIComponent(name)}/ask`, { question });
    status.textContent = answer.grounded ? "" : "Nothing in this collection answers that.";
    await showRendered($("answer"), answer.answer, render);
    const cited = new Set(answer.cited);
    $("sources").replaceChildren(
      ...answer.sources.map((source) =>
        el(
          "li",
          {},
          el("a", {
            href: `#record/${encodeURIComponent(name)}/${encodeURIComponent(source.id)}`,
            text: source.id,
          }),
          el("span", {
            class: "source-about",
            text: `${cited.has(source.id) ? " cited," : ""} relevance ${source.relevance}: ${preview(source.text)}`,
          }),
        ),
      ),
    );
    $("sources-title").hidden = answer.sources.length === 0;
  } catch (error) {
    status.textContent = "";
    notify(error);
  }
}

export async function showRecord(name, id) {
  const record = await get(`/v1/memory/${encodeURIComponent(name)}/records/${encodeURIComponent(id)}`);
  $("record-title").textContent = `Record ${record.id}`;
  const facts = [
    ["Collection", record.collection],
    ["Description", record.description],
    ["Source", record.metadata?.source],
    ["Saved", record.updated_at || record.created_at],
  ].filter(([, value]) => value);
  $("record-meta").replaceChildren(
    ...facts.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: String(value) })]),
  );
  await showRendered($("record-text"), record.text, render);
}
