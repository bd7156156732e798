// Charts: tapping or clicking a point shows its value under the chart (hover shows it too).
document.addEventListener("click", (event) => {
  const point = event.target.closest("figure.chart circle[data-v]");
  if (!point) return;
  const picked = point.closest("figure.chart").querySelector(".picked");
  if (picked) picked.textContent = point.getAttribute("data-v");
});
