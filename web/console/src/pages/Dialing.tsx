import type { Organization } from '@pushdial/sdk';
import { useEffect, useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { ConfirmButton, ErrorNote, Field, Loading, PageTitle, TableWrap, Time, useAsync } from '../components/ui';
import { countryName, countryOptions } from '../phone';

const NUMBER_TYPES: { id: string; label: string }[] = [
  { id: 'premium_rate', label: 'premium rate' },
  { id: 'shared_cost', label: 'shared cost' },
  { id: 'uan', label: 'universal access (UAN)' },
  { id: 'personal_number', label: 'personal numbers' },
  { id: 'toll_free', label: 'toll free' },
  { id: 'voip', label: 'VoIP' },
  { id: 'pager', label: 'pagers' },
  { id: 'voicemail', label: 'voicemail access' },
  { id: 'mobile', label: 'mobile' },
  { id: 'fixed_line', label: 'fixed line' },
  { id: 'fixed_line_or_mobile', label: 'fixed line or mobile (ambiguous)' },
  { id: 'unknown', label: 'unknown type' },
];

function Policy({ org, onSaved }: { org: Organization; onSaved: (o: Organization) => void }) {
  const [countries, setCountries] = useState<string[]>(org.dialing.allowed_countries);
  const [types, setTypes] = useState<string[]>(org.dialing.blocked_number_types);
  const [add, setAdd] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => setSaved(false), [countries, types]);
  const options = countryOptions().filter((o) => !countries.includes(o.code));
  return (
    <form
      class="card"
      aria-labelledby="policy-title"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          onSaved(await unwrap(api.PATCH('/v1/organization', { body: { dialing: { allowed_countries: countries, blocked_number_types: types } } })));
          setSaved(true);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2 id="policy-title" class="h3">
        Dialing policy
      </h2>
      <fieldset class="field">
        <legend>Countries calls may go to</legend>
        <ul class="chips" aria-label="Allowed countries" data-testid="dialing-countries">
          {countries.map((c) => (
            <li key={c} class="chip" data-country={c}>
              {countryName(c)} <span class="muted">{c}</span>
              <button type="button" class="chip-x" aria-label={`Remove ${countryName(c)}`} onClick={() => setCountries(countries.filter((x) => x !== c))} data-testid={`dialing-remove-${c}`}>
                ×
              </button>
            </li>
          ))}
          {countries.length === 0 ? <li class="muted">None: every call is refused.</li> : null}
        </ul>
        <div class="row">
          <label class="sr-only" for="add-country">
            Add a country
          </label>
          <select id="add-country" value={add} onChange={(e) => setAdd(e.currentTarget.value)} data-testid="dialing-add-country">
            <option value="">Add a country…</option>
            {options.map((o) => (
              <option key={o.code} value={o.code}>
                {o.name}
              </option>
            ))}
          </select>
          <button
            type="button"
            class="btn"
            disabled={!add}
            data-testid="dialing-add"
            onClick={() => {
              if (add) setCountries([...countries, add]);
              setAdd('');
            }}
          >
            Add
          </button>
        </div>
      </fieldset>
      <fieldset class="field">
        <legend>Number types refused</legend>
        <div class="checks">
          {NUMBER_TYPES.map((t) => (
            <label key={t.id} class="check">
              <input
                type="checkbox"
                checked={types.includes(t.id)}
                onChange={(e) => setTypes(e.currentTarget.checked ? [...types, t.id] : types.filter((x) => x !== t.id))}
                data-testid={`dialing-type-${t.id}`}
              />{' '}
              {t.label}
            </label>
          ))}
        </div>
      </fieldset>
      <ErrorNote error={error} />
      {saved ? (
        <p class="note note-ok" role="status" data-testid="dialing-saved">
          Saved.
        </p>
      ) : null}
      <button type="submit" class="btn btn-primary" disabled={busy} data-testid="dialing-save">
        {busy ? 'Saving…' : 'Save policy'}
      </button>
    </form>
  );
}

function Blocklist() {
  const list = useAsync(() => unwrap(api.GET('/v1/blocked_numbers')), []);
  const [prefix, setPrefix] = useState('');
  const [error, setError] = useState<unknown>(null);
  return (
    <section class="card" aria-labelledby="blocklist-title">
      <h2 id="blocklist-title" class="h3">
        Blocked numbers
      </h2>
      <form
        class="row wrap"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          try {
            const b = await unwrap(api.POST('/v1/blocked_numbers', { body: { prefix: prefix.replace(/[\s\-.()]/g, '') } }));
            list.setData({ ...(list.data ?? { object: 'list', has_more: false, data: [] }), data: [b, ...(list.data?.data ?? [])] });
            setPrefix('');
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field label="Number or prefix" hint="+ and digits; +1900 blocks every number that starts so.">
          {(p) => <input {...p} required value={prefix} onInput={(e) => setPrefix(e.currentTarget.value)} class="mono" data-testid="blocklist-prefix" placeholder="+1900" />}
        </Field>
        <button type="submit" class="btn" data-testid="blocklist-add">
          Block
        </button>
      </form>
      <ErrorNote error={error ?? list.error} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.data.length > 0 ? (
        <TableWrap label="Blocked numbers">
          <thead>
            <tr>
              <th scope="col">Prefix</th>
              <th scope="col">Added</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.data.data.map((b) => (
              <tr key={b.id} data-testid="blocklist-row">
                <td class="mono">{b.prefix}</td>
                <td>
                  <Time iso={b.created_at} />
                </td>
                <td>
                  <ConfirmButton
                    label="Unblock"
                    confirm={`Unblock ${b.prefix}?`}
                    testid="blocklist-remove"
                    onConfirm={async () => {
                      await unwrap(api.DELETE('/v1/blocked_numbers/{blocked_number_id}', { params: { path: { blocked_number_id: b.id } } }));
                      list.setData({ ...list.data!, data: list.data!.data.filter((x) => x.id !== b.id) });
                    }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      ) : list.data ? (
        <p class="muted">No blocked numbers.</p>
      ) : null}
    </section>
  );
}

export function Dialing() {
  const org = useAsync(() => unwrap(api.GET('/v1/organization')), []);
  return (
    <main id="main" data-testid="dialing-page">
      <PageTitle>Dialing policy</PageTitle>
      <p>Which numbers your organization's calls may reach. The server checks every call against it and refuses the others.</p>
      {org.loading && !org.data ? <Loading /> : null}
      <ErrorNote error={org.error} />
      {org.data ? <Policy key={org.data.id} org={org.data} onSaved={(o) => org.setData(o)} /> : null}
      <Blocklist />
    </main>
  );
}
