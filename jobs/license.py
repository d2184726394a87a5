"""DataZen license text (name, company, email, `[feature;…]`, key lines) → DataZenLicense.

The gateway cannot verify the vendor's signature over the key lines, so "valid" here means
well-formed; it enforces nothing from the license.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# The document shows 4 for both a valid and an invalid license, so it is not a validity flag:
# it is what a parsed license reports; 0 means there was no license to parse.
PARSED_RESULT = 4
NO_LICENSE_RESULT = 0

EDITIONS = ("Enterprise", "Professional", "Standard", "Developer", "Express", "Trial")

# Feature name in the license → DataZenLicense flag it grants (besides the edition's own).
FEATURE_FLAGS: dict[str, str] = {
    "SyncSource": "AcceptSource",
    "SyncTarget": "AcceptTarget",
    "Databases": "AllowDatabases",
    "Scheduler": "SchedulerAllowed",
    "DataPipeline": "DataPipelineAllowed",
    "MessagingHubs": "AllowMessagingHubs",
    "DriveFiles": "AllowDriveFiles",
    "PGPEncryption": "AllowPGPEncryption",
    "DataCopy": "AllowDataCopy",
    "RBAC": "AllowRBAC",
    "Heuristics": "AllowHeuristics",
}
# What an Enterprise license allows whatever features it lists (the document's example).
ENTERPRISE_FLAGS = tuple(
    v for k, v in FEATURE_FLAGS.items() if k not in ("SyncSource", "SyncTarget")
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FEATURES = re.compile(r"^\[(?P<body>[^\]]*)\]$")
_KEY_LINE = re.compile(r"^[0-9A-Fa-f]+$")
_MAX_JOBS = re.compile(r"^MaxJobs=(?P<n>-?\d+)$", re.IGNORECASE)


@dataclass
class License:
    name: str = ""
    company: str = ""
    email: str = ""
    features: list[str] = field(default_factory=list)
    key: str = ""
    errors: list[str] = field(default_factory=list)


def parse(text: str) -> License:
    """Split the license text into its parts, noting what is wrong rather than raising."""
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    lic = License()
    if len(lines) < 5:
        lic.errors.append(
            "A license has at least five lines: name, company, email, [features], key."
        )
    parts = [*lines, "", "", "", ""]
    lic.name, lic.company, lic.email = parts[0], parts[1], parts[2]
    if lic.email and not _EMAIL.match(lic.email):
        lic.errors.append(f"Line 3 is not an email address: {lic.email!r}.")
    features = _FEATURES.match(parts[3])
    if features:
        lic.features = [f.strip() for f in features.group("body").split(";") if f.strip()]
    elif parts[3]:
        lic.errors.append(
            "Line 4 must list the features in brackets, e.g. [SyncSource;SyncTarget]."
        )
    key_lines = lines[4:]
    bad = [n for n, line in enumerate(key_lines, start=5) if not _KEY_LINE.match(line)]
    if bad:
        lic.errors.append(f"Key line {bad[0]} is not hexadecimal.")
    lic.key = "".join(key_lines)
    return lic


def datazen_license(text: str) -> dict[str, Any]:
    """The DataZenLicense object for `text` (empty text: no license)."""
    if not text.strip():
        return _license_object(License(), "", valid=False, message="No license is applied.")
    lic = parse(text)
    valid = not lic.errors
    message = None if valid else "License is invalid: " + " ".join(lic.errors)
    return _license_object(lic, text, valid=valid, message=message)


def _license_object(lic: License, text: str, *, valid: bool, message: str | None) -> dict[str, Any]:
    features = set(lic.features)
    edition = next((e for e in EDITIONS if e in features), "")
    flags = {flag: False for flag in FEATURE_FLAGS.values()}
    for feature in features:
        if feature in FEATURE_FLAGS:
            flags[FEATURE_FLAGS[feature]] = True
    if edition == "Enterprise":
        flags.update(dict.fromkeys(ENTERPRISE_FLAGS, True))
    max_jobs = -1 if edition == "Enterprise" else 0
    for feature in features:
        if match := _MAX_JOBS.match(feature):
            max_jobs = int(match.group("n"))
    return {
        "AcceptSource": flags["AcceptSource"],
        "AcceptTarget": flags["AcceptTarget"],
        "AllowDatabases": flags["AllowDatabases"],
        "SchedulerAllowed": flags["SchedulerAllowed"],
        "DataPipelineAllowed": flags["DataPipelineAllowed"],
        "DirectJobsOnly": "DirectJobsOnly" in features,
        "AllowMessagingHubs": flags["AllowMessagingHubs"],
        "AllowDriveFiles": flags["AllowDriveFiles"],
        "AllowPGPEncryption": flags["AllowPGPEncryption"],
        "MaxJobs": max_jobs,
        "AllowDataCopy": flags["AllowDataCopy"],
        "AllowRBAC": flags["AllowRBAC"],
        "AllowHeuristics": flags["AllowHeuristics"],
        "Edition": edition,
        "LicenseFile": text,
        "IsValid": valid,
        "LicenseValidationError": None,
        "LicenseValidationResult": PARSED_RESULT if text.strip() else NO_LICENSE_RESULT,
        "LastValidationMessage": message,
    }
