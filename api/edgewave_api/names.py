"""Constrained strings shared by the kinds: regions, jurisdictions, model names, digests.

Pure. Each is an `Annotated[str, ...]` whose pattern and length limits become the CRD's
`pattern`/`maxLength` and hold in Python too. Patterns use only what both Go RE2 (the API
server) and Rust regex (pydantic) understand.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
JURISDICTION = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$"
SHA256_HEX = r"^[a-f0-9]{64}$"
DIGEST = r"^sha256:[a-f0-9]{64}$"
MODEL_NAME = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"
MODEL_VERSION = r"^[A-Za-z0-9]([-A-Za-z0-9_.+]*[A-Za-z0-9])?$"
MODEL_URI = r"^(file|http|https)://[^\s]+$"
ENDPOINT = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):[0-9]{1,5}$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
COMPUTE_CAPABILITY = r"^[0-9]+\.[0-9]+$"
REASON = r"^[A-Z][A-Za-z0-9]*$"

DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
"""A DNS label (RFC 1123): lower-case alphanumerics and '-', at most 63 characters."""

DnsSubdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
"""A DNS subdomain (RFC 1123), as Kubernetes object names are."""

RegionName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
"""A region name, a DNS label such as `eu-west`."""

JurisdictionName = Annotated[str, Field(min_length=1, max_length=32, pattern=JURISDICTION)]
"""A legal jurisdiction in upper case, such as `EU`, `US` or `US-CA`."""

Sha256Hex = Annotated[str, Field(min_length=64, max_length=64, pattern=SHA256_HEX)]
"""A SHA-256 checksum: 64 lower-case hex digits."""

Digest = Annotated[str, Field(max_length=71, pattern=DIGEST)]
"""A content digest, `sha256:` and 64 lower-case hex digits."""

ModelName = Annotated[str, Field(min_length=1, max_length=63, pattern=MODEL_NAME)]
"""A model name: lower-case alphanumerics, '-', '_' and '.', at most 63 characters."""

ModelVersion = Annotated[str, Field(min_length=1, max_length=63, pattern=MODEL_VERSION)]
"""A model version label such as `1.2.0` or `2026-01-15`: alphanumerics and `-_.+`."""

ComputeCapability = Annotated[str, Field(max_length=8, pattern=COMPUTE_CAPABILITY)]
"""An NVIDIA compute capability, `major.minor`, such as `8.6`."""

Reason = Annotated[str, Field(min_length=1, max_length=128, pattern=REASON)]
"""A CamelCase machine-readable reason such as `RegionNotAllowed`."""
