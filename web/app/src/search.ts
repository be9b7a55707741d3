// Search: an entity by kind and id → its neighbourhood (2 hops unless the user picks 1 or 3;
// identifiers of more than the API's hub degree stay one node however far) in the graph,
// centre selected.
import { byTestId, clearError, h, reportError, showError } from './dom';
import { markSelected, showNeighbourhood } from './graph';
import { showNode } from './panel';
import { ENTITY_KINDS, isEntityKind, type EntityKind } from './types';

const KIND_LABELS: Record<EntityKind, string> = {
  ACCOUNT: 'Account',
  DEVICE: 'Device',
  PHONE: 'Phone',
  PAYEE: 'Payee',
  IP: 'IP address',
  EMAIL: 'Email',
  ID_DOCUMENT: 'ID document',
  BANK_CARD: 'Bank card',
};

/** Draw (kind, id) and select its centre; `select` false keeps the panel as it is. */
export async function search(kind: EntityKind, id: string, select = true): Promise<void> {
  const go = byTestId<HTMLButtonElement>('search-go');
  go.disabled = true;
  try {
    const hops = Number(byTestId<HTMLSelectElement>('search-hops').value) || 2;
    const centre = await showNeighbourhood(kind, id, hops);
    if (centre === null) {
      showError(`No ${kind} with id ${id}.`);
      return;
    }
    if (select) {
      markSelected(centre.key);
      showNode(centre);
    }
  } catch (e) {
    reportError(e);
  } finally {
    go.disabled = false;
  }
}

/** Put (kind, id) in the search form and run it, as if typed. */
export function searchFor(kind: EntityKind, id: string): void {
  byTestId<HTMLSelectElement>('search-kind').value = kind;
  byTestId<HTMLInputElement>('search-id').value = id;
  clearError();
  void search(kind, id);
}

export function initSearch(): void {
  const select = byTestId<HTMLSelectElement>('search-kind');
  select.replaceChildren(...ENTITY_KINDS.map((k) => h('option', { value: k }, KIND_LABELS[k])));
  document.getElementById('search-form')!.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const kind = select.value;
    const id = byTestId<HTMLInputElement>('search-id').value.trim();
    clearError();
    if (!isEntityKind(kind)) return;
    if (!id) {
      showError('Type an id to search for.');
      return;
    }
    void search(kind, id);
  });
}
