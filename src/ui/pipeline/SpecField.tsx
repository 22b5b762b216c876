// One control per run-spec field, generated from the spec table (src/state/spec.ts FIELDS): its label,
// its one-line doc as the hint, a select for choices, a switch for booleans, a number input with the
// field's bounds. Edits go straight to the store, which mirrors the spec into the URL.
import { useEffect, useState } from 'react';
import { FIELDS, type Field, type SpecKey } from '../../state/spec.ts';
import { usePipeline } from '../../state/pipeline.ts';

function fieldOf(key: SpecKey): Field {
  return (FIELDS as readonly Field[]).find((f) => f.key === key)!;
}

export function SpecField({ k, disabled, choices }: { k: SpecKey; disabled?: boolean; choices?: readonly string[] }) {
  const f = fieldOf(k);
  const value = usePipeline((s) => s.spec[k]);
  const setField = usePipeline((s) => s.setField);
  const id = `spec-${k.replace('.', '-')}`;
  const set = (v: unknown) => setField(k, v as never);
  const options = choices ?? (f.type === 'string' ? f.choices : undefined);
  return (
    <div className={`field spec-field ${disabled ? 'is-off' : ''}`} data-field={k}>
      <label className="field-label" htmlFor={id}>
        {f.label}
      </label>
      {f.type === 'boolean' ? (
        <label className="switch-line">
          <input id={id} type="checkbox" checked={value as boolean} disabled={disabled} onChange={(e) => set(e.target.checked)} />
          <span>{(value as boolean) ? 'On' : 'Off'}</span>
        </label>
      ) : options ? (
        <select id={id} className="input" value={String(value)} disabled={disabled} onChange={(e) => set(e.target.value)}>
          {!options.includes(String(value)) && <option value={String(value)}>{String(value)}</option>}
          {options.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      ) : f.type === 'number' ? (
        <NumberInput id={id} f={f} value={value as number} disabled={disabled} onChange={set} />
      ) : (
        <input id={id} className="input mono" value={value as string} disabled={disabled} onChange={(e) => set(e.target.value)} />
      )}
      <span className="field-hint">{f.doc}</span>
    </div>
  );
}

/** A number input that keeps what is typed and commits only values the field accepts. */
function NumberInput({ id, f, value, disabled, onChange }: { id: string; f: Extract<Field, { type: 'number' }>; value: number; disabled?: boolean; onChange(v: number): void }) {
  const ok = (v: number) => Number.isFinite(v) && (!f.int || Number.isInteger(v)) && (f.min === undefined || v >= f.min) && (f.max === undefined || v <= f.max);
  const [text, setText] = useState(String(value));
  // A spec loaded from the URL or a run file replaces what is shown, unless it is what is typed.
  useEffect(() => setText((t) => (Number(t) === value ? t : String(value))), [value]);
  return (
    <input
      id={id}
      className={`input mono ${ok(Number(text)) && text.trim() !== '' ? '' : 'is-invalid'}`}
      type="number"
      min={f.min}
      max={f.max}
      step={f.int ? 1 : 'any'}
      value={text}
      disabled={disabled}
      onChange={(e) => {
        setText(e.target.value);
        const v = e.target.valueAsNumber;
        if (ok(v)) onChange(v);
      }}
      onBlur={() => setText(String(value))}
    />
  );
}
