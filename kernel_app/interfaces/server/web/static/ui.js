// Small DOM helpers shared by the views. Text always goes in as text (textContent); the only HTML the
// page inserts is what the server's markdown renderer returned.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

const listeners = [];

// A failure for the user: one line in the page's alert (401s are the sign-in's business: see app.js).
export function notify(error) {
  const notice = $("notice");
  const message = error instanceof Error ? error.message : String(error);
  notice.textContent = message;
  notice.hidden = false;
  for (const listener of listeners) listener(error);
}

export function onFailure(listener) {
  listeners.push(listener);
}

export function clearNotice() {
  $("notice").hidden = true;
  $("notice").textContent = "";
}

let uniqueCount = 0;
export function unique(prefix) {
  uniqueCount += 1;
  return `${prefix}-${uniqueCount}`;
}

// The rendered HTML of a markdown text into node, unless a newer render of it came first.
export async function showRendered(node, text, renderer) {
  const turn = (node.renderTurn = (node.renderTurn || 0) + 1);
  const [html] = await renderer([text]);
  if (node.renderTurn === turn) {
    node.innerHTML = html; // the server's renderer: raw HTML escaped, only http(s) links
    node.classList.remove("draft");
  }
}
