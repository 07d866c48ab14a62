// contacthub admin: small progressive enhancements; every page works without them.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  navigator.clipboard.writeText(button.dataset.copy).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

// Forms that change something irreversible ask first.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Elements with data-refresh="seconds" reload the page while something runs (sending).
document.addEventListener("DOMContentLoaded", () => {
  const element = document.querySelector("[data-refresh]");
  if (element) setTimeout(() => window.location.reload(), Number(element.dataset.refresh) * 1000);
});

// Schedule forms: the datetime-local field is read in the browser's time zone (without this,
// the hub reads it as UTC, which the label then says).
document.addEventListener("DOMContentLoaded", () => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone) return;
  document.querySelectorAll("input[data-browser-time-zone]").forEach((input) => {
    if (input.value) return; // a form shown again keeps the zone it was sent with
    input.value = zone;
    const label = input.form.querySelector("[data-time-zone-label]");
    if (label) label.textContent = zone;
  });
});
