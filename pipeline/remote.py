"""Checks for what runs off this machine (Kubeflow or Vertex AI containers, Beam workers on
Flink, Spark or Dataflow): whether they can reach a path, and whether the container image
they run is pinned."""

import re

_REMOTE_URI_RE = re.compile(r"([a-z][a-z0-9+.-]*)://[^/\s]+")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def is_remote_uri(path: str) -> bool:
  """Whether every container can reach ``path``.

  Args:
    path: a path or URI.

  Returns:
    True for ``scheme://host/...`` (``gs://bucket/...``, ``s3://...``); False for a local
    path, a ``file://`` URI or an empty string.
  """
  match = _REMOTE_URI_RE.match(path or "")
  return bool(match) and match.group(1) != "file"


def check_image(image: str) -> None:
  """Checks that a container image reference is pinned: a digest (``@sha256:...``) or an
  explicit tag other than ``latest``.

  Args:
    image: e.g. ``europe-docker.pkg.dev/PROJECT/REPO/imdb-tfx:0.1.0``.

  Raises:
    ValueError: the image is empty, has no tag or digest, is tagged ``latest``, or is
      malformed.
  """
  image = (image or "").strip()
  if not image:
    raise ValueError("the container image must not be empty")
  if any(c.isspace() for c in image):
    raise ValueError(f"the container image {image!r} contains whitespace")
  if "@" in image:
    name, digest = image.split("@", 1)
    if not name or not _DIGEST_RE.fullmatch(digest):
      raise ValueError(
        f"the container image {image!r} has a malformed digest; expected "
        "NAME@sha256:<64 hex digits>"
      )
    return
  name = image.rsplit("/", 1)[-1]  # a registry port (host:5000/...) is not a tag
  if ":" not in name:
    raise ValueError(
      f"the container image {image!r} has no tag: pin it with an explicit tag "
      "(IMAGE:1.0.0) or a digest (IMAGE@sha256:...) so every run uses the same build"
    )
  tag = name.split(":", 1)[1]
  if tag == "latest":
    raise ValueError(
      f"the container image {image!r} is tagged 'latest', which moves with every push: "
      "pin an explicit tag (IMAGE:1.0.0) or a digest (IMAGE@sha256:...)"
    )
  if not _TAG_RE.fullmatch(tag):
    raise ValueError(f"the container image {image!r} has an invalid tag {tag!r}")
