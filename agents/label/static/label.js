// The ranking widget of the labeling page.
//
// The order of the cards is the ranking, best first; a card with the class "tied" shares the rank of the
// card above it. Every change writes the ranks (1 = best, dense) into the form's rank_<i> inputs, which are
// what the server reads and validates; without this script those inputs are visible and typed by hand.
// The script only moves the server-rendered nodes and sets textContent: completions stay text.
"use strict";

(function () {
  const list = document.getElementById("cards");
  const form = document.getElementById("ranking-form");
  if (!list || !form) return;
  document.documentElement.classList.add("js");
  const FLAG_KEYS = {f: "fails_instruction", h: "made_up_facts", i: "inappropriate"};
  const cards = () => Array.from(list.querySelectorAll(".card"));

  function render() {
    let rank = 0;
    cards().forEach((card, pos) => {
      const tied = pos > 0 && card.classList.contains("tied");
      if (pos > 0 && !tied) rank += 1;
      card.querySelector(".rank-value").textContent = String(rank + 1);
      card.querySelector("input[type=number]").value = String(rank + 1);
      card.classList.toggle("shows-tie", tied);
      const tie = card.querySelector(".tie");
      tie.setAttribute("aria-pressed", tied ? "true" : "false");
      tie.disabled = pos === 0;
    });
  }

  // Which card precedes each card: a tie holds only between cards that stay neighbours.
  const predecessors = () => new Map(cards().map((c, i, all) => [c, all[i - 1] || null]));

  function breakTies(before) {
    cards().forEach((c, i, all) => {
      if (before.get(c) !== (all[i - 1] || null)) c.classList.remove("tied");
    });
  }

  function place(card, pos) {  // put card at 0-based position pos among the cards
    const others = cards().filter((c) => c !== card);
    pos = Math.max(0, Math.min(pos, others.length));
    list.insertBefore(card, others[pos] || null);
  }

  function move(card, pos) {
    const before = predecessors();
    place(card, pos);
    breakTies(before);
    render();
    card.focus();
  }

  function toggleTie(card) {
    if (cards().indexOf(card) > 0) card.classList.toggle("tied");
    render();
  }

  // Keyboard: the focused card is the one the keys act on.
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit(document.getElementById("submit"));
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.matches("input[type=number], input[type=text], input[type=password], select, textarea")) return;
    const all = cards();
    const card = e.target.closest ? e.target.closest(".card") : null;
    const pos = all.indexOf(card);
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    let handled = true;
    if (!card) {
      if (["ArrowDown", "ArrowUp", "j", "k"].includes(key)) all[0].focus();
      else handled = false;
    } else if (/^[1-9]$/.test(key)) {
      if (Number(key) <= all.length) move(card, Number(key) - 1);
    } else if (key === "ArrowDown" || key === "j") {
      if (e.shiftKey) move(card, pos + 1);
      else if (all[pos + 1]) all[pos + 1].focus();
    } else if (key === "ArrowUp" || key === "k") {
      if (e.shiftKey) move(card, pos - 1);
      else if (all[pos - 1]) all[pos - 1].focus();
    } else if (key === "t" || key === "=") {
      toggleTie(card);
    } else if (FLAG_KEYS[key]) {
      const box = card.querySelector(`input[type=checkbox][value=${FLAG_KEYS[key]}]`);
      box.checked = !box.checked;
    } else {
      handled = false;
    }
    if (handled) e.preventDefault();
  });

  // Mouse: the buttons on each card, and dragging a card by its handle (pointer events, so touch works too).
  list.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    const card = button.closest(".card");
    const pos = cards().indexOf(card);
    if (button.classList.contains("up")) move(card, pos - 1);
    else if (button.classList.contains("down")) move(card, pos + 1);
    else if (button.classList.contains("tie")) toggleTie(card);
  });

  let drag = null;
  list.addEventListener("pointerdown", (e) => {
    const handle = e.target.closest(".handle");
    if (!handle || e.button !== 0) return;
    e.preventDefault();
    drag = {card: handle.closest(".card"), before: predecessors()};
    drag.card.classList.add("dragging");
    handle.setPointerCapture(e.pointerId);
  });
  list.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const others = cards().filter((c) => c !== drag.card);
    let pos = others.findIndex((c) => {
      const box = c.getBoundingClientRect();
      return e.clientY < box.top + box.height / 2;
    });
    if (pos < 0) pos = others.length;
    if (pos !== cards().indexOf(drag.card)) {
      place(drag.card, pos);
      render();
    }
  });
  const drop = () => {
    if (!drag) return;
    drag.card.classList.remove("dragging");
    breakTies(drag.before);
    render();
    drag.card.focus();
    drag = null;
  };
  list.addEventListener("pointerup", drop);
  list.addEventListener("pointercancel", drop);

  render();
  const first = cards()[0];
  if (first && !document.getElementById("error")) first.focus();
})();
