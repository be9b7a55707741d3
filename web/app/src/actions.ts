// Verdicts and case notes (WRITE_LABELS only; the panel does not build these otherwise).
// Mutations are sent once; the answer (verdict, author, time) is what is shown as saved.
import { gql } from './api';
import { fmtTime, h, reportError } from './dom';
import type { CaseNote, Verdict, VerdictValue } from './types';

const LABEL_ACCOUNT = `mutation LabelAccount($id: ID!, $verdict: VerdictValue!, $note: String!) {
  labelAccount(accountId: $id, verdict: $verdict, note: $note) { verdict note author createdAt }
}`;
const LABEL_CLUSTER = `mutation LabelCluster($id: ID!, $verdict: VerdictValue!, $note: String!) {
  labelCluster(clusterId: $id, verdict: $verdict, note: $note) { verdict note author createdAt }
}`;
const ADD_NOTE = `mutation AddCaseNote($id: ID!, $text: String!) {
  addCaseNote(clusterId: $id, text: $text) { text author createdAt }
}`;

const MAX_NOTE = 10000; // the API's cap on notes

/** One verdict as a list item: "FRAUD by alice · time" and its note. */
export function verdictItem(v: Verdict): HTMLLIElement {
  return h(
    'li',
    { class: `verdict v-${v.verdict.toLowerCase()}` },
    h('b', {}, v.verdict),
    ` by ${v.author}`,
    h('span', { class: 'when' }, ` · ${fmtTime(v.createdAt)}`),
    v.note ? h('div', { class: 'note' }, v.note) : null,
  );
}

export function noteItem(n: CaseNote): HTMLLIElement {
  return h(
    'li',
    { class: 'case-note' },
    h('div', { class: 'note' }, n.text),
    h('span', { class: 'when' }, `${n.author} · ${fmtTime(n.createdAt)}`),
  );
}

/**
 * The verdict form for an account or a cluster. `list`, when given, gets the saved verdict
 * appended (the panel's verdict history).
 */
export function verdictForm(
  target: 'account' | 'cluster',
  id: string,
  list: HTMLElement | null,
): HTMLElement {
  const select = h(
    'select',
    { testid: 'verdict-select', 'aria-label': 'Verdict' },
    h('option', { value: '' }, 'Verdict…'),
    h('option', { value: 'FRAUD' }, 'FRAUD'),
    h('option', { value: 'LEGIT' }, 'LEGIT'),
  );
  const note = h('textarea', {
    testid: 'verdict-note',
    rows: 3,
    maxlength: MAX_NOTE,
    placeholder: 'Why (kept with the verdict)',
    'aria-label': 'Verdict note',
  });
  const save = h('button', { type: 'submit', testid: 'verdict-save' }, 'Save verdict');
  const hint = h('p', { class: 'form-error' });
  hint.hidden = true;
  const saved = h('p', { class: 'saved' }, h('span', { testid: 'verdict-saved' }));
  saved.hidden = true;
  const form = h(
    'form',
    { class: 'action-form' },
    h('div', { class: 'row' }, select, save),
    note,
    hint,
    saved,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const verdict = select.value as VerdictValue | '';
    if (verdict !== 'FRAUD' && verdict !== 'LEGIT') {
      hint.textContent = 'Choose FRAUD or LEGIT first.';
      hint.hidden = false;
      return;
    }
    hint.hidden = true;
    save.disabled = true;
    const query = target === 'account' ? LABEL_ACCOUNT : LABEL_CLUSTER;
    gql<{ labelAccount?: Verdict; labelCluster?: Verdict }>(query, {
      id,
      verdict,
      note: note.value,
    })
      .then((data) => {
        const v = data.labelAccount ?? data.labelCluster;
        if (!v) return;
        // Exactly "FRAUD by alice" in the testid'd span; the time beside it.
        const span = saved.querySelector('[data-testid="verdict-saved"]')!;
        span.textContent = `${v.verdict} by ${v.author}`;
        saved.replaceChildren(span, h('span', { class: 'when' }, ` · saved ${fmtTime(v.createdAt)}`));
        saved.hidden = false;
        note.value = '';
        list?.querySelector('.empty')?.remove();
        list?.append(verdictItem(v));
        list?.closest('section')?.removeAttribute('hidden');
      })
      .catch((e: unknown) => reportError(e, 'Saving the verdict failed: '))
      .finally(() => {
        save.disabled = false;
      });
  });
  return form;
}

/** "Add case note" for a cluster (a ring); saved notes are appended to `list`. */
export function noteForm(clusterId: string, list: HTMLElement): HTMLElement {
  const text = h('textarea', {
    testid: 'note-text',
    rows: 3,
    maxlength: MAX_NOTE,
    placeholder: 'Case note on this ring',
    'aria-label': 'Case note',
  });
  const save = h('button', { type: 'submit', testid: 'note-save' }, 'Add case note');
  const hint = h('p', { class: 'form-error' });
  hint.hidden = true;
  const form = h('form', { class: 'action-form' }, text, h('div', { class: 'row' }, save), hint);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = text.value.trim();
    if (!value) {
      hint.textContent = 'Write the note first.';
      hint.hidden = false;
      return;
    }
    hint.hidden = true;
    save.disabled = true;
    gql<{ addCaseNote: CaseNote }>(ADD_NOTE, { id: clusterId, text: value })
      .then((data) => {
        list.querySelector('.empty')?.remove();
        list.append(noteItem(data.addCaseNote));
        text.value = '';
      })
      .catch((e: unknown) => reportError(e, 'Saving the case note failed: '))
      .finally(() => {
        save.disabled = false;
      });
  });
  return form;
}
