// The page: sign-in (an API key or a pasted token, kept in sessionStorage for this tab), the views
// chosen by the address's #fragment (#chat, #chat/ID, #functions, #memory, #record/COLLECTION/ID).

import { get, setToken, token } from "./api.js";
import * as chat from "./chat.js";
import * as functions from "./functions.js";
import * as memory from "./memory.js";
import { $, clearNotice, notify, onFailure } from "./ui.js";

const VIEWS = ["chat", "functions", "memory", "record"];

async function signIn() {
  const config = await fetch("/web/config.json").then((r) => r.json());
  if (config.mode === "none") return;
  $("key-form").hidden = false;
  $("api-key").value = token();
  const help = $("sign-in-help");
  if (config.mode === "key") {
    help.textContent = "This server needs an API key: type it in the API key field. It is kept only in this tab.";
  } else {
    // Signing in with MSAL in the page would need Microsoft's library, which this page does not fetch.
    $("api-key-label").textContent = config.mode === "entra" ? "Token" : "API key or token";
    help.textContent =
      `This server signs users in with Entra ID (tenant ${config.tenant_id}). Paste an access token for ` +
      `${config.scope}, e.g. from: az account get-access-token --scope ${config.scope} --query accessToken -o tsv` +
      (config.mode === "key-or-entra" ? " (or an API key)." : ".");
  }
  help.hidden = !!token();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("api-key").value.trim());
    help.hidden = !!token();
    clearNotice();
    route();
  });
}

onFailure((error) => {
  if (error.status === 401 || error.status === 403) {
    $("sign-in-help").hidden = false;
    if (!$("key-form").hidden) $("api-key").focus();
  }
});

async function route() {
  const [view, ...rest] = location.hash.replace(/^#/, "").split("/").map(decodeURIComponent);
  const name = VIEWS.includes(view) ? view : "chat";
  for (const other of VIEWS) $(`view-${other}`).hidden = other !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name || (name === "record" && link.dataset.view === "memory")) {
      link.setAttribute("aria-current", "page");
    } else link.removeAttribute("aria-current");
  }
  try {
    if (name === "chat") {
      await chat.listConversations();
      if (rest[0]) await chat.open(rest[0]);
    } else if (name === "functions") await functions.show(rest[0]);
    else if (name === "memory") await memory.show();
    else if (name === "record") await memory.showRecord(rest[0], rest.slice(1).join("/"));
  } catch (error) {
    notify(error);
  }
}

async function start() {
  chat.setup();
  functions.setup();
  memory.setup();
  try {
    await signIn();
  } catch (error) {
    notify(error);
  }
  window.addEventListener("hashchange", route);
  await route();
  document.body.dataset.ready = "true"; // tests wait for this
}

start();
