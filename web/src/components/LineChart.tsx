// A small time-series chart (uPlot: canvas, tiny, no inline styles or scripts). Colours come from the page's CSS
// variables, so it follows light and dark.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  values: (number | null)[];
  colorVar: string; // a CSS custom property, e.g. --ok
}

interface Props {
  title: string;
  times: number[]; // seconds since the epoch
  series: Series[];
  yLabel: string;
  height?: number;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function canDraw(): boolean {
  // jsdom (the unit tests) has no canvas
  try {
    return document.createElement("canvas").getContext("2d") !== null;
  } catch {
    return false;
  }
}

export function LineChart({ title, times, series, yLabel, height = 200 }: Props) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = box.current;
    if (!element || !canDraw()) return;
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid") }, ticks: { stroke: cssVar("--grid") } };
    const plot = new uPlot(
      {
        width: Math.max(element.clientWidth, 300),
        height,
        series: [
          {},
          ...series.map((s) => ({
            label: s.label,
            stroke: cssVar(s.colorVar),
            width: 2,
            // a sparse series (a rate: no value in a minute where nothing finished) shows its points
            points: { show: s.values.some((v) => v === null), size: 5, fill: cssVar(s.colorVar) },
          })),
        ],
        axes: [axis, { ...axis, label: yLabel }],
        // from 0, and a range even when every value is null (uPlot has none to draw axes from then)
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max || 0, 1) * 1.1] } },
        legend: { show: true },
      },
      [times, ...series.map((s) => s.values)],
      element,
    );
    const resize = new ResizeObserver(() => {
      plot.setSize({ width: Math.max(element.clientWidth, 300), height });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [times, series, yLabel, height]);

  const summary = series
    .map((s) => `${s.label}: ${s.values.reduce<number>((sum, v) => sum + (v ?? 0), 0).toLocaleString()}`)
    .join(", ");
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}. ${summary}`} />
    </figure>
  );
}
