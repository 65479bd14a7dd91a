"""A plausible SDP answer to a browser's offer (no media ever flows: the simulator has no WebRTC).

The answer mirrors the offer's media sections (kind and `mid`), so a WebRTC stack that parses it
finds the audio track and the `oai-events` data channel where it expects them.
"""

from __future__ import annotations

import secrets


class InvalidOffer(ValueError):
    """The body is not an SDP offer."""


def answer_for(offer: str) -> str:
    """An SDP answer for *offer*, CRLF-separated as SDP requires.

    Raises:
        InvalidOffer: the offer does not start with `v=0` or has no media section.
    """
    lines = [line.strip() for line in offer.strip().splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise InvalidOffer("an SDP offer starts with 'v=0'")
    sections = _media_sections(lines)
    if not sections:
        raise InvalidOffer("the SDP offer has no media section ('m=' line)")

    ufrag = secrets.token_hex(4)
    password = secrets.token_hex(12)
    fingerprint = ":".join(f"{byte:02X}" for byte in secrets.token_bytes(32))
    session_id = secrets.randbelow(2**62)
    answer = [
        "v=0",
        f"o=- {session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(mid for _, mid in sections),
        "a=msid-semantic:WMS *",
    ]
    for kind, mid in sections:
        if kind == "application":
            answer.append("m=application 9 UDP/DTLS/SCTP webrtc-datachannel")
        else:
            answer.append(f"m={kind} 9 UDP/TLS/RTP/SAVPF 111")
        answer += [
            "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{ufrag}",
            f"a=ice-pwd:{password}",
            f"a=fingerprint:sha-256 {fingerprint}",
            "a=setup:active",
            f"a=mid:{mid}",
        ]
        if kind == "application":
            answer.append("a=sctp-port:5000")
        else:
            answer += [
                "a=sendrecv",
                "a=rtcp-mux",
                "a=rtpmap:111 opus/48000/2",
                "a=fmtp:111 minptime=10;useinbandfec=1",
            ]
    return "\r\n".join(answer) + "\r\n"


def _media_sections(lines: list[str]) -> list[tuple[str, str]]:
    """(kind, mid) for each `m=` section; a section without `a=mid` gets its index."""
    sections: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
            sections.append((kind, str(len(sections))))
        elif line.startswith("a=mid:") and sections:
            sections[-1] = (sections[-1][0], line[len("a=mid:") :])
    return sections
