// OpenDeploy dashboard: confirmation dialogs for actions and live updates of a deployment page.
// Plain JavaScript, no build step. Pages work without it (actions then submit unconfirmed).
"use strict";

function setupConfirm() {
  const dialog = document.getElementById("confirm");
  if (!dialog || typeof dialog.showModal !== "function") return;
  let pending = null;
  let opener = null;
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    event.preventDefault();
    pending = form;
    opener = document.activeElement;
    document.getElementById("confirm-text").textContent = form.dataset.confirm;
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
  dialog.addEventListener("close", () => {
    const form = pending;
    pending = null;
    if (dialog.returnValue === "ok" && form) {
      for (const button of form.querySelectorAll("button")) button.disabled = true;
      form.submit();  // submit() does not fire the submit event again
    } else if (opener && typeof opener.focus === "function") {
      opener.focus();
    }
  });
}

function setupLive() {
  const live = document.getElementById("live");
  if (!live || live.dataset.live !== "true" || !window.EventSource) return;
  const source = new EventSource(live.dataset.stream);
  const regions = ["summary", "failure", "actions", "instances"];
  for (const name of regions) {
    source.addEventListener(name, (event) => {
      const region = document.getElementById("region-" + name);
      if (!region) return;
      // Do not pull the actions away from under an open confirmation.
      if (name === "actions" && document.getElementById("confirm").open) return;
      region.innerHTML = JSON.parse(event.data);
    });
  }
  source.addEventListener("output", (event) => {
    const pre = document.getElementById("region-output");
    if (!pre) return;
    const message = JSON.parse(event.data);
    const name = document.getElementById("output-instance");
    if (name && message.instance) name.textContent = message.instance;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    if (message.reset) pre.textContent = message.text;
    else pre.append(message.text);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("end", () => {
    source.close();
    live.dataset.live = "false";
  });
  source.addEventListener("error", () => {
    // A 401 (session ended) closes the stream for good; the browser retries other errors.
    if (source.readyState === EventSource.CLOSED) live.dataset.live = "false";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupConfirm();
  setupLive();
});
