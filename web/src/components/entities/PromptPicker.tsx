// Pick a prompt from the library, hear it in the browser, or upload a new one in place.
import { useRef, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import { keys, usePrompts } from '../../api/queries';
import { describedBy, Field } from '../common/ui';

export function PromptPicker({
  id,
  label,
  value,
  onChange,
  error,
}: {
  id: string;
  label: string;
  /** the prompt's name ("" for none): what `greeting_file` and prompt fields of node configs
   *  hold, and what the media engine plays (a custom prompt of a system prompt's name wins) */
  value: string;
  onChange: (v: string) => void;
  error?: string;
}) {
  const prompts = usePrompts();
  const qc = useQueryClient();
  const fileRef = useRef<HTMLInputElement>(null);
  const [uploading, setUploading] = useState(false);
  const [uploadError, setUploadError] = useState<string | null>(null);

  const upload = async (file: File) => {
    setUploading(true);
    setUploadError(null);
    try {
      const p = await api.prompts.upload(file, api.prompts.nameFromFile(file.name));
      await qc.invalidateQueries({ queryKey: keys.prompts });
      onChange(p.name);
    } catch (e) {
      setUploadError(errorMessage(e));
    } finally {
      setUploading(false);
      if (fileRef.current) fileRef.current.value = '';
    }
  };

  // a custom prompt of the same name as a system one is what plays
  const matches = (prompts.data ?? []).filter((p) => p.name === value);
  const selected = matches.find((p) => p.kind !== 'system') ?? matches[0];
  const help = 'A WAV file of any rate (converted to 8 kHz mono); listen to it here before using it.';
  return (
    <Field id={id} label={label} error={error ?? uploadError ?? undefined} help={help}>
      <div className="flex flex-wrap items-center gap-2">
        <select
          {...describedBy(id, error ?? uploadError ?? undefined, help)}
          className={`input min-w-0 flex-1 ${error ? 'input-error' : ''}`}
          value={value}
          onChange={(e) => onChange(e.target.value)}
        >
          <option value="">— none —</option>
          {value && !selected && <option value={value}>{value}</option>}
          {(prompts.data ?? []).map((p) => (
            <option key={p.id} value={p.name}>
              {p.name}
              {p.kind === 'system' ? ' (system)' : ''}
            </option>
          ))}
        </select>
        <button type="button" className="btn btn-sm" onClick={() => fileRef.current?.click()} disabled={uploading}>
          {uploading ? 'Uploading…' : 'Upload…'}
        </button>
        <input
          ref={fileRef}
          type="file"
          accept=".wav,audio/wav,audio/x-wav"
          className="sr-only"
          aria-label={`Upload a prompt for ${label}`}
          onChange={(e) => {
            const f = e.target.files?.[0];
            if (f) void upload(f);
          }}
        />
      </div>
      {selected && (
        <audio className="mt-2 h-8 w-full" controls preload="none" src={api.prompts.audioUrl(selected.id)} aria-label={`Preview ${label}`} />
      )}
    </Field>
  );
}
