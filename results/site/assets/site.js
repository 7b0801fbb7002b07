// lt-bench results site: sortable and filterable leaderboards, expandable rows, Plotly charts.
// Everything runs from the file system: no request leaves the page's folder.
"use strict";

function sortBoard(table, header) {
  const index = Array.from(header.parentNode.children).indexOf(header);
  const numeric = header.dataset.type === "number";
  // Numbers start best first (descending), text A to Z; a second click reverses.
  const first = numeric ? "descending" : "ascending";
  const order = header.getAttribute("aria-sort") === first ? (first === "descending" ? "ascending" : "descending") : first;
  table.querySelectorAll("th").forEach((th) => th.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", order);
  const body = table.tBodies[0];
  const pairs = Array.from(body.querySelectorAll("tr.entry")).map((row) => [row, row.nextElementSibling]);
  const key = (row) => row.children[index].dataset.value;
  pairs.sort(([a], [b]) => {
    let x = key(a), y = key(b);
    if (numeric) {
      // Rows without a value go last whatever the direction.
      if (x === "" || y === "") return (x === "") - (y === "");
      x = parseFloat(x); y = parseFloat(y);
      return order === "ascending" ? x - y : y - x;
    }
    return order === "ascending" ? x.localeCompare(y) : y.localeCompare(x);
  });
  pairs.forEach(([row, details]) => { body.appendChild(row); body.appendChild(details); });
}

function applyFilters(table, selects, counter) {
  let shown = 0;
  const rows = table.querySelectorAll("tr.entry");
  rows.forEach((row) => {
    const visible = selects.every((select) => !select.value || row.dataset[select.dataset.filter] === select.value);
    row.hidden = !visible;
    if (!visible) row.nextElementSibling.hidden = true;
    shown += visible;
  });
  counter.textContent = `${shown} of ${rows.length} rows`;
}

function setUpBoard(table) {
  const selects = Array.from(document.querySelectorAll("select[data-filter]"));
  const counter = document.querySelector(".filters .shown");
  table.querySelectorAll("th").forEach((th) => th.addEventListener("click", () => sortBoard(table, th)));
  table.querySelectorAll("tr.entry").forEach((row) => {
    const toggle = () => { row.nextElementSibling.hidden = !row.nextElementSibling.hidden; };
    row.addEventListener("click", (event) => { if (!event.target.closest("a")) toggle(); });
    row.addEventListener("keydown", (event) => { if (event.key === "Enter") toggle(); });
  });
  // A link such as mnist_lt.html#protocol=paper opens the table filtered.
  const wanted = new URLSearchParams(window.location.hash.slice(1));
  selects.forEach((select) => {
    if (wanted.has(select.dataset.filter)) select.value = wanted.get(select.dataset.filter);
    select.addEventListener("change", () => applyFilters(table, selects, counter));
  });
  applyFilters(table, selects, counter);
}

function drawCharts() {
  const figures = window.LT_BENCH_FIGURES || {};
  document.querySelectorAll("[data-figure]").forEach((element) => {
    const figure = figures[element.dataset.figure];
    if (figure) {
      Plotly.newPlot(element, figure.data, figure.layout, { responsive: true, displaylogo: false });
    }
  });
}

document.querySelectorAll("table.board").forEach(setUpBoard);
drawCharts();
