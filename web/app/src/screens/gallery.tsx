// Gallery: upload an image, the grid of thumbnails (signed URLs), an image's details with its
// metadata, title and tags, the original to download, edits as jobs with live progress
// (WatchJob), and the trash (restore, delete for good, empty).

import { useEffect, useRef, useState } from "preact/hooks";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import {
  GalleryService,
  ImageOperationResultSchema,
  ImageOrigin,
  ImageStyle,
  ImageVariant,
  type Image,
} from "../../../src/gen/aimesh/gallery/v1/gallery_pb.js";
import { JobState, type Job } from "../../../src/gen/aimesh/jobs/v1/jobs_pb.js";
import { client, millis, sameOrigin, session } from "../api.js";
import { ErrorNote, JobProgress, Pager, Panel, bytes, finished, useAction, useJob, usePaged, when } from "../ui.js";
import type { ScreenProps } from "./index.js";

export const gallery = client(GalleryService);

const PAGE = 24;

// --- uploads with progress ------------------------------------------------------------------

/**
 * `fetch` over XMLHttpRequest, whose upload events say how much of the request body has been
 * sent (fetch cannot): the grpc-web transport of an upload uses it to fill the progress bar.
 */
function fetchWithProgress(onProgress: (sent: number, total: number) => void): typeof fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      xhr.open(init?.method ?? "POST", url);
      new Headers(init?.headers).forEach((value, name) => xhr.setRequestHeader(name, value));
      xhr.responseType = "arraybuffer";
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded, e.total);
      };
      xhr.onload = () => {
        const headers = new Headers();
        for (const line of xhr.getAllResponseHeaders().trim().split(/\r?\n/)) {
          const at = line.indexOf(":");
          if (at > 0) headers.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
        }
        resolve(new Response(xhr.response as ArrayBuffer, { status: xhr.status, headers }));
      };
      xhr.onerror = () => reject(new TypeError("the upload could not reach the server"));
      xhr.onabort = () => reject(new DOMException("the upload was stopped", "AbortError"));
      init?.signal?.addEventListener("abort", () => xhr.abort());
      xhr.send(init?.body as XMLHttpRequestBodyInit);
    });
}

/** The signed-in user's token on an upload, as api.ts's clients send it. */
const uploadAuth: Interceptor = (next) => async (request) => {
  const token = await session.accessToken();
  if (token) request.header.set("authorization", `Bearer ${token}`);
  try {
    return await next(request);
  } catch (error) {
    if (token && error instanceof ConnectError && error.code === Code.Unauthenticated) session.lapse();
    throw error;
  }
};

/** A gallery client whose calls report how much of their request has been sent. */
function uploader(onProgress: (sent: number, total: number) => void) {
  return createClient(
    GalleryService,
    createGrpcWebTransport({
      baseUrl: window.location.origin,
      interceptors: [uploadAuth],
      fetch: fetchWithProgress(onProgress),
    }),
  );
}

// --- signed URLs --------------------------------------------------------------------------

/** Signed URLs already fetched, by image and variant, until shortly before they expire. */
const urls = new Map<string, { url: string; expires: number }>();

/** A same-origin signed URL of `id`'s `variant` ("" until known); `null` when refused. */
export function useImageUrl(id: string | undefined, variant: ImageVariant): string | null {
  const key = `${id}:${variant}`;
  const cached = id ? urls.get(key) : undefined;
  const fresh = cached && cached.expires - Date.now() > 30_000 ? cached.url : "";
  const [url, setUrl] = useState<string | null>(fresh);
  useEffect(() => {
    if (!id) return;
    const known = urls.get(key);
    if (known && known.expires - Date.now() > 30_000) {
      setUrl(known.url);
      return;
    }
    setUrl("");
    let live = true;
    gallery
      .getImageUrl({ id, variant })
      .then((r) => {
        const signed = sameOrigin(r.url);
        urls.set(key, { url: signed, expires: millis(r.expireTime) || Date.now() + 60_000 });
        if (live) setUrl(signed);
      })
      .catch(() => live && setUrl(null));
    return () => {
      live = false;
    };
  }, [key]);
  return url;
}

/** An image of the gallery by its signed URL, with a placeholder while the URL is fetched. */
export function GalleryImage({
  id,
  variant,
  alt,
  className,
}: {
  id: string;
  variant: ImageVariant;
  alt: string;
  className?: string;
}) {
  const url = useImageUrl(id, variant);
  if (url === null) return <span class={`thumb-missing ${className ?? ""}`}>Image unavailable</span>;
  if (!url) return <span class={`thumb-loading ${className ?? ""}`} aria-busy="true" />;
  return <img src={url} alt={alt} class={className} loading="lazy" decoding="async" />;
}

function imageName(image: Image): string {
  return image.title || `Image of ${when(image.createTime)}`;
}

function originName(origin: ImageOrigin): string {
  switch (origin) {
    case ImageOrigin.UPLOADED:
      return "uploaded";
    case ImageOrigin.GENERATED:
      return "generated";
    case ImageOrigin.DERIVED:
      return "derived";
    default:
      return "unknown";
  }
}

/** Tags typed as "a, b, c". */
function parseTags(text: string): string[] {
  return [...new Set(text.split(",").map((t) => t.trim()).filter(Boolean))];
}

// --- the screen -------------------------------------------------------------------------

export function Gallery({ arg }: ScreenProps) {
  const [reload, setReload] = useState(0);
  const refresh = () => setReload((n) => n + 1);
  const view = arg === "trash" ? "trash" : arg ? "image" : "images";
  return (
    <>
      <nav class="tabs gallery-tabs" aria-label="Gallery views">
        <a class="button" href="#/gallery" aria-current={view === "images" ? "page" : undefined}>
          Images
        </a>
        <a class="button" href="#/gallery/trash" aria-current={view === "trash" ? "page" : undefined}>
          Trash
        </a>
      </nav>
      {view === "trash" ? (
        <Trash />
      ) : view === "image" ? (
        <ImageView key={arg} id={arg} onChange={refresh} />
      ) : (
        <>
          <div class="gallery-forms">
            <Upload onUploaded={refresh} />
            <Generate onMade={refresh} />
          </div>
          <Images reload={reload} />
        </>
      )}
    </>
  );
}

/**
 * Uploads a file with UploadImage (one call; the bar shows the bytes sent, then the server
 * decodes and stores the image).
 */
function Upload({ onUploaded }: { onUploaded: (image: Image) => void }) {
  const fileRef = useRef<HTMLInputElement>(null);
  const [title, setTitle] = useState("");
  const [tags, setTags] = useState("");
  const [keep, setKeep] = useState(false);
  const [state, setState] = useState<"idle" | "sending" | "storing" | "done">("idle");
  const [percent, setPercent] = useState(0);
  const [stored, setStored] = useState<Image>();
  const upload = useAction(async () => {
    const file = fileRef.current?.files?.[0];
    if (!file) throw new Error("Choose an image file first.");
    setState("sending");
    setPercent(0);
    setStored(undefined);
    try {
      const data = new Uint8Array(await file.arrayBuffer());
      const sending = uploader((sent, total) => {
        // The bar stops short of 100 until the server has stored the image.
        setPercent(Math.min(99, Math.floor((sent / Math.max(total, 1)) * 100)));
        if (sent >= total) setState("storing");
      });
      const r = await sending.uploadImage({
        body: { contentType: file.type, data },
        title: title.trim() || file.name.replace(/\.[^.]*$/, "").slice(0, 200),
        tags: parseTags(tags),
        keepMetadata: keep,
      });
      setPercent(100);
      setState("done");
      if (r.image) {
        setStored(r.image);
        onUploaded(r.image);
      }
      setTitle("");
      if (fileRef.current) fileRef.current.value = "";
    } catch (error) {
      setState("idle");
      throw error;
    }
  });
  const said =
    state === "sending"
      ? `Sending… ${percent}%`
      : state === "storing"
        ? "Sent; the server is checking and storing the image…"
        : stored
          ? `Stored “${imageName(stored)}”.`
          : "Stored.";
  return (
    <Panel title="Upload an image">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void upload.run();
        }}
      >
        <label>
          Image file (PNG, JPEG, WebP or GIF)
          <input ref={fileRef} type="file" accept="image/png,image/jpeg,image/webp,image/gif" required />
        </label>
        <label>
          Title
          <input maxLength={200} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        </label>
        <label>
          Tags (separated by commas)
          <input value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={keep} onChange={(e) => setKeep(e.currentTarget.checked)} />
          Keep the file's metadata (EXIF, GPS position)
        </label>
        <button type="submit" disabled={upload.busy}>
          Upload
        </button>
      </form>
      {state !== "idle" ? (
        <div class="job" data-state={state}>
          <label>
            Upload
            <progress aria-label="Upload" max={100} value={percent} />
          </label>
          <span class="job-state" role="status">
            {said}
          </span>
        </div>
      ) : null}
      <ErrorNote error={upload.error} />
    </Panel>
  );
}

/** GenerateImage: a prompt drawn by the image-generation engine, as a job. */
function Generate({ onMade }: { onMade: () => void }) {
  const [prompt, setPrompt] = useState("");
  const [jobId, setJobId] = useState<string>();
  const job = useJob(jobId, (done) => done.state === JobState.SUCCEEDED && onMade());
  const start = useAction(async () => {
    const r = await gallery.generateImage({ prompt: prompt.trim(), title: prompt.trim().slice(0, 200) });
    setJobId(r.job?.id);
  });
  return (
    <Panel title="Generate an image">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void start.run();
        }}
      >
        <label>
          Description
          <textarea required rows={2} maxLength={2000} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={start.busy}>
          Generate
        </button>
      </form>
      <ErrorNote error={start.error} />
      {jobId ? <JobProgress job={job} label="Generation" /> : null}
      <MadeImage job={job} />
    </Panel>
  );
}

/** A link to the image a finished gallery job made. */
function MadeImage({ job }: { job: Job | undefined }) {
  if (job?.state !== JobState.SUCCEEDED || !job.result) return null;
  const result = anyUnpack(job.result, ImageOperationResultSchema);
  if (!result?.imageId) return null;
  return (
    <p>
      <a href={`#/gallery/${result.imageId}`}>Open the new image</a>
      {result.engine ? <span class="meta"> · made by {result.engine}</span> : null}
    </p>
  );
}

/** The grid of images outside the trash, newest first, filtered by tag and origin. */
function Images({ reload }: { reload: number }) {
  const [tag, setTag] = useState("");
  const [origin, setOrigin] = useState<ImageOrigin>(ImageOrigin.UNSPECIFIED);
  const { items: list, loaded, next, error, tokens, setTokens } = usePaged(
    (pageToken, signal) =>
      gallery
        .listImages({ pageSize: PAGE, pageToken, tag: tag.trim(), origin }, { signal })
        .then((r) => ({ items: r.images, next: r.nextPageToken })),
    [tag, origin, reload],
    200,
  );
  return (
    <Panel title="Your images">
      <div class="filters">
        <label>
          Tag
          <input
            type="search"
            value={tag}
            onInput={(e) => {
              setTag(e.currentTarget.value);
              setTokens([""]);
            }}
          />
        </label>
        <label>
          Origin
          <select
            value={String(origin)}
            onChange={(e) => {
              setOrigin(Number(e.currentTarget.value) as ImageOrigin);
              setTokens([""]);
            }}
          >
            <option value={String(ImageOrigin.UNSPECIFIED)}>any</option>
            {[ImageOrigin.UPLOADED, ImageOrigin.GENERATED, ImageOrigin.DERIVED].map((o) => (
              <option key={o} value={String(o)}>
                {originName(o)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorNote error={error} />
      {!loaded && !error ? <p aria-busy="true">Loading…</p> : null}
      <ul class="gallery-grid" aria-label="Images">
        {list.map((image) => (
          <li key={image.id}>
            <a href={`#/gallery/${image.id}`}>
              <GalleryImage id={image.id} variant={ImageVariant.THUMBNAIL_256} alt={imageName(image)} className="thumb" />
              <span class="thumb-title">{imageName(image)}</span>
              <span class="meta">
                {image.width} × {image.height} · {originName(image.origin)}
              </span>
            </a>
          </li>
        ))}
      </ul>
      {loaded && list.length === 0 && !error ? <p class="empty">No images yet.</p> : null}
      <Pager tokens={tokens} next={next} onPage={setTokens} />
    </Panel>
  );
}

/** One image: its details, editing, download, operations and deletion. */
function ImageView({ id, onChange }: { id: string; onChange: () => void }) {
  const [image, setImage] = useState<Image>();
  const [error, setError] = useState<unknown>(null);
  const original = useImageUrl(image && !image.deleteTime ? id : undefined, ImageVariant.ORIGINAL);
  useEffect(() => {
    gallery
      .getImage({ id })
      .then((r) => setImage(r.image))
      .catch(setError);
  }, [id]);
  const remove = useAction(async () => {
    await gallery.deleteImage({ id });
    onChange();
    window.location.hash = "#/gallery";
  });
  if (error) return <ErrorNote error={error} />;
  if (!image) return <p aria-busy="true">Loading…</p>;
  const name = imageName(image);
  return (
    <>
      <p>
        <a href="#/gallery">← All images</a>
      </p>
      <Panel title={name}>
        <div class="image-detail">
          <figure class="image-large">
            <GalleryImage id={image.id} variant={ImageVariant.THUMBNAIL_1024} alt={name} />
          </figure>
          <div>
            <dl class="facts" aria-label="Details">
              <dt>Size</dt>
              <dd>
                {image.width} × {image.height} px · {bytes(image.sizeBytes)} · {image.format}
              </dd>
              <dt>Origin</dt>
              <dd>
                {originName(image.origin)}
                {image.operation ? ` (${image.operation})` : ""}
                {image.sourceId ? (
                  <>
                    {" from "}
                    <a href={`#/gallery/${image.sourceId}`}>its source</a>
                  </>
                ) : null}
              </dd>
              {image.prompt ? (
                <>
                  <dt>Prompt</dt>
                  <dd>{image.prompt}</dd>
                </>
              ) : null}
              <dt>Tags</dt>
              <dd>{image.tags.length ? image.tags.join(", ") : "none"}</dd>
              <dt>Created</dt>
              <dd>{when(image.createTime)}</dd>
              <dt>Metadata</dt>
              <dd>{image.metadataKept ? "kept as uploaded" : "stripped"}</dd>
              <dt>SHA-256</dt>
              <dd>
                <code class="hash">{image.sha256}</code>
              </dd>
              {image.deleteTime ? (
                <>
                  <dt>In the trash</dt>
                  <dd>since {when(image.deleteTime)}, purged {when(image.purgeTime)}</dd>
                </>
              ) : null}
            </dl>
            <div class="row">
              {original ? (
                <a class="button secondary-link" href={original} download={`${name}.${image.format}`}>
                  Download original
                </a>
              ) : null}
              {!image.deleteTime ? (
                <a class="button secondary-link" href={`#/chat/about/${image.id}`}>
                  Ask about it in chat
                </a>
              ) : null}
              {!image.deleteTime ? (
                <button
                  type="button"
                  class="danger"
                  disabled={remove.busy}
                  onClick={() => window.confirm(`Move “${name}” to the trash?`) && void remove.run()}
                >
                  Move to trash
                </button>
              ) : null}
            </div>
            <ErrorNote error={remove.error} />
          </div>
        </div>
      </Panel>
      {!image.deleteTime ? (
        <>
          <EditImage
            image={image}
            onSaved={(saved) => {
              setImage(saved);
              onChange();
            }}
          />
          <Operations image={image} onMade={onChange} />
        </>
      ) : null}
    </>
  );
}

function EditImage({ image, onSaved }: { image: Image; onSaved: (image: Image) => void }) {
  const [title, setTitle] = useState(image.title);
  const [prompt, setPrompt] = useState(image.prompt);
  const [tags, setTags] = useState(image.tags.join(", "));
  const [saved, setSaved] = useState(false);
  const save = useAction(async () => {
    setSaved(false);
    const r = await gallery.updateImage({
      id: image.id,
      title: title.trim(),
      prompt: prompt.trim(),
      tags: { values: parseTags(tags) },
    });
    if (r.image) onSaved(r.image);
    setSaved(true);
  });
  return (
    <Panel title="Title and tags">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save.run();
        }}
      >
        <label>
          Title
          <input maxLength={200} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        </label>
        <label>
          Prompt or note
          <textarea rows={2} maxLength={2000} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
        </label>
        <label>
          Tags (separated by commas)
          <input value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
        </label>
        <ErrorNote error={save.error} />
        <div class="row">
          <button type="submit" disabled={save.busy}>
            Save
          </button>
          <span class="meta" role="status">
            {saved ? "Saved." : ""}
          </span>
        </div>
      </form>
    </Panel>
  );
}

const STYLES: [ImageStyle, string][] = [
  [ImageStyle.GRAYSCALE, "Grayscale"],
  [ImageStyle.SEPIA, "Sepia"],
  [ImageStyle.POSTERIZE, "Posterize"],
  [ImageStyle.PENCIL_SKETCH, "Pencil sketch"],
  [ImageStyle.CARTOON, "Cartoon"],
  [ImageStyle.EMBOSS, "Emboss"],
  [ImageStyle.PAINTING, "Painting"],
];

/** Edits that make a new, derived image, each a job followed live. */
function Operations({ image, onMade }: { image: Image; onMade: () => void }) {
  const [style, setStyle] = useState(ImageStyle.SEPIA);
  const [factor, setFactor] = useState(2);
  const [sharpen, setSharpen] = useState(1);
  const [running, setRunning] = useState<{ id: string; label: string }>();
  const job = useJob(running?.id, (done) => done.state === JobState.SUCCEEDED && onMade());
  const start = useAction(async (label: string, call: () => Promise<{ job?: Job }>) => {
    const r = await call();
    if (r.job) setRunning({ id: r.job.id, label });
  });
  const id = image.id;
  const busy = start.busy || (running !== undefined && job !== undefined && !finished(job));
  return (
    <Panel title="Edit into a new image">
      <div class="operations">
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            void start.run("Enhance", () => gallery.enhanceImage({ id, sharpenAmount: sharpen }));
          }}
        >
          <label>
            Sharpening (0 to 5)
            <input
              type="number"
              min={0}
              max={5}
              step={0.5}
              value={sharpen}
              onInput={(e) => setSharpen(Number(e.currentTarget.value))}
            />
          </label>
          <button type="submit" disabled={busy}>
            Enhance
          </button>
        </form>
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            void start.run("Style", () => gallery.stylizeImage({ id, style }));
          }}
        >
          <label>
            Style
            <select value={String(style)} onChange={(e) => setStyle(Number(e.currentTarget.value) as ImageStyle)}>
              {STYLES.map(([value, name]) => (
                <option key={value} value={String(value)}>
                  {name}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={busy}>
            Apply style
          </button>
        </form>
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            void start.run("Upscale", () => gallery.upscaleImage({ id, factor }));
          }}
        >
          <label>
            Scale
            <select value={String(factor)} onChange={(e) => setFactor(Number(e.currentTarget.value))}>
              {[2, 3, 4].map((f) => (
                <option key={f} value={String(f)}>
                  {f}×
                </option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={busy}>
            Upscale
          </button>
        </form>
        <div class="row">
          <button
            type="button"
            disabled={busy}
            onClick={() => void start.run("Background removal", () => gallery.removeBackground({ id }))}
          >
            Remove background
          </button>
        </div>
      </div>
      <ErrorNote error={start.error} />
      {running ? <JobProgress key={running.id} job={job} label={running.label} /> : null}
      <MadeImage job={job} />
    </Panel>
  );
}

/** The trash: restore, delete for good, empty. */
function Trash() {
  const {
    items: list,
    loaded,
    next,
    error,
    tokens,
    setTokens,
    reload: refresh,
  } = usePaged(
    (pageToken, signal) =>
      gallery
        .listDeletedImages({ pageSize: PAGE, pageToken }, { signal })
        .then((r) => ({ items: r.images, next: r.nextPageToken })),
    [],
  );
  const [said, setSaid] = useState("");
  const act = useAction(async (what: "restore" | "delete", image: Image) => {
    if (what === "restore") {
      await gallery.restoreImage({ id: image.id });
      setSaid(`Restored “${imageName(image)}”.`);
    } else {
      await gallery.permanentlyDeleteImage({ id: image.id });
      setSaid(`Deleted “${imageName(image)}” for good.`);
    }
    refresh();
  });
  const empty = useAction(async () => {
    const r = await gallery.emptyTrash({});
    setSaid(`Deleted ${r.deletedCount} image${r.deletedCount === 1 ? "" : "s"} for good.`);
    setTokens([""]);
    refresh();
  });
  return (
    <Panel title="Trash">
      <p class="hint">Images in the trash are deleted for good when their time comes, unless restored.</p>
      <ErrorNote error={error} />
      <ErrorNote error={act.error || empty.error} />
      <p class="meta" role="status">
        {said}
      </p>
      {!loaded && !error ? <p aria-busy="true">Loading…</p> : null}
      <ul class="trash-list" aria-label="Images in the trash">
        {list.map((image) => (
          <li key={image.id}>
            <GalleryImage id={image.id} variant={ImageVariant.THUMBNAIL_256} alt={imageName(image)} className="thumb" />
            <div class="trash-info">
              <strong>{imageName(image)}</strong>
              <span class="meta">
                deleted {when(image.deleteTime)} · purged {when(image.purgeTime)}
              </span>
              <div class="row">
                <button
                  type="button"
                  class="secondary"
                  disabled={act.busy}
                  aria-label={`Restore ${imageName(image)}`}
                  onClick={() => void act.run("restore", image)}
                >
                  Restore
                </button>
                <button
                  type="button"
                  class="danger"
                  disabled={act.busy}
                  aria-label={`Delete ${imageName(image)} for good`}
                  onClick={() =>
                    window.confirm(`Delete “${imageName(image)}” for good? This cannot be undone.`) &&
                    void act.run("delete", image)
                  }
                >
                  Delete for good
                </button>
              </div>
            </div>
          </li>
        ))}
      </ul>
      {loaded && list.length === 0 && !error ? <p class="empty">The trash is empty.</p> : null}
      <Pager tokens={tokens} next={next} onPage={setTokens} />
      {list.length > 0 ? (
        <button
          type="button"
          class="danger"
          disabled={empty.busy}
          onClick={() => window.confirm("Delete every image in the trash for good?") && void empty.run()}
        >
          Empty trash
        </button>
      ) : null}
    </Panel>
  );
}
