// The jobs filter form: what it shows comes from the URL; "Apply" (or Enter) writes the URL.
import { type SyntheticEvent, useState } from "react";

import { JOB_STATUSES, type JobStatus } from "../../lib/types";
import { EMPTY_FILTER, type JobFilter, argsProblem } from "./filters";

export function FiltersBar({ filter, onApply }: { filter: JobFilter; onApply: (next: JobFilter) => void }) {
  const [draft, setDraft] = useState(filter);
  const problem = argsProblem(draft.args);
  const text = (key: "queue" | "target" | "q" | "args" | "before", label: string, placeholder: string) => (
    <label className={`field field-${key}`}>
      <span>{label}</span>
      <input
        name={key}
        value={draft[key]}
        placeholder={placeholder}
        inputMode={key === "before" ? "numeric" : undefined}
        aria-invalid={key === "args" && problem ? true : undefined}
        onChange={(event) => {
          setDraft({ ...draft, [key]: event.target.value });
        }}
      />
    </label>
  );
  const toggle = (status: JobStatus, on: boolean) => {
    const next = on ? [...draft.status, status] : draft.status.filter((s) => s !== status);
    setDraft({ ...draft, status: JOB_STATUSES.filter((s) => next.includes(s)) });
  };
  const submit = (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (!problem) onApply({ ...draft, before: draft.before.replace(/\D/g, "") });
  };

  return (
    <form className="filters" role="search" aria-label="Filter jobs" onSubmit={submit}>
      <fieldset className="statuses">
        <legend>Status</legend>
        {JOB_STATUSES.map((status) => (
          <label key={status} className="check">
            <input
              type="checkbox"
              name="status"
              value={status}
              checked={draft.status.includes(status)}
              onChange={(event) => {
                toggle(status, event.target.checked);
              }}
            />
            {status}
          </label>
        ))}
      </fieldset>
      {text("queue", "Queue", "default")}
      {text("target", "Target", "app.mail.Mailer")}
      {text("q", "Text", "in target or error")}
      {text("args", "Arguments (JSON)", '{"customer_id": 42}')}
      {text("before", "Older than ID", "")}
      <div className="filter-actions">
        <button type="submit" className="primary" disabled={Boolean(problem)}>
          Apply
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft(EMPTY_FILTER);
            onApply(EMPTY_FILTER);
          }}
        >
          Clear
        </button>
      </div>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
    </form>
  );
}
