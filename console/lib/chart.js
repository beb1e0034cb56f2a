// A line chart over time (uPlot) that everyone can read: a heading, a summary in words as its
// accessible name, and the same figures in a table under <details>. It follows its container's width.
import uPlot from "../vendor/uplot.mjs";
import { html, useEffect, useId, useRef } from "./ui.js";

const HEIGHT = 220;
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });

// x: times (ISO 8601 strings); series: [{ label, values, stroke, dash }]; format(value) -> text.
export function LineChart({ title, summary, x, series, format = String, range, xTitle = "Time" }) {
  const headingId = useId("chart");
  const box = useRef(null);
  const plot = useRef(null);

  useEffect(() => {
    const element = box.current;
    if (!element) return undefined;
    const seconds = x.map((time) => new Date(time).getTime() / 1000);
    const options = {
      width: Math.max(element.clientWidth, 200),
      height: HEIGHT,
      scales: { x: { time: true }, y: range ? { range: () => range } : { range: (_u, min, max) => [0, Math.max(max ?? 1, 1) * 1.1] } },
      axes: [{}, { values: (_u, ticks) => ticks.map((tick) => format(tick)), size: 70 }],
      series: [
        { label: xTitle, value: (_u, value) => (value == null ? "–" : timeFormat.format(new Date(value * 1000))) },
        ...series.map((one) => ({
          label: one.label,
          stroke: one.stroke,
          width: 2,
          dash: one.dash,
          points: { show: true, size: 5 },
          value: (_u, value) => (value == null ? "–" : format(value)),
        })),
      ],
    };
    plot.current?.destroy();
    plot.current = new uPlot(options, [seconds, ...series.map((one) => one.values)], element);
    const resize = new ResizeObserver(() => {
      const width = Math.max(element.clientWidth, 200);
      if (plot.current && Math.abs(plot.current.width - width) > 1) plot.current.setSize({ width, height: HEIGHT });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [x, series]);

  return html`<section class="chart-block" aria-labelledby=${headingId}>
    <h3 id=${headingId}>${title}</h3>
    <div class="chart" role="img" aria-label=${`${title}: ${summary}`}><div class="chart-canvas" ref=${box}></div></div>
    <details>
      <summary>The figures of “${title}”</summary>
      <div class="table-scroll" role="region" aria-label=${`${title}, as a table`} tabindex="0">
        <table>
          <caption class="visually-hidden">${title}</caption>
          <thead><tr><th scope="col">${xTitle}</th>${series.map((one) => html`<th scope="col">${one.label}</th>`)}</tr></thead>
          <tbody>
            ${x.map(
              (time, index) => html`<tr key=${time}>
                <th scope="row"><time datetime=${time}>${timeFormat.format(new Date(time))}</time></th>
                ${series.map((one) => html`<td>${one.values[index] == null ? "no attempts" : format(one.values[index])}</td>`)}
              </tr>`,
            )}
          </tbody>
        </table>
      </div>
    </details>
  </section>`;
}

// "from 80 % to 100 %, latest 95 %" over the values that exist.
export function describe(values, format) {
  const known = values.filter((value) => value !== null && value !== undefined);
  if (!known.length) return "no attempts in this period";
  const latest = [...values].reverse().find((value) => value !== null && value !== undefined);
  return `lowest ${format(Math.min(...known))}, highest ${format(Math.max(...known))}, latest ${format(latest)}`;
}
