// Module scripts do not load from file:// pages, so the book's drawing pad cannot start there. Say how to serve it.
document.addEventListener("DOMContentLoaded", () => {
  if (location.protocol !== "file:") return;
  for (const el of document.querySelectorAll(".sbir-pad")) {
    el.textContent = "The drawing pad needs a web server: run `make serve` in the repository and open the address "
      + "it prints.";
  }
});
