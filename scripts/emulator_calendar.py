"""Systems Manager Change Calendar for the tests' emulator.

moto refuses a Change Calendar document as AWS creates it (`DocumentType` ChangeCalendar,
`DocumentFormat` TEXT, iCalendar content: the AWS::SSM::Document example of the CloudFormation
User Guide) and has no `GetCalendarState`. This layer keeps such documents itself, per account and
region, and answers `GetCalendarState` from their iCalendar events as the SSM API Reference says:
a `DEFAULT_OPEN` calendar is CLOSED during its events and a `DEFAULT_CLOSED` one OPEN during
them; several calendars are OPEN only if all are; `AtTime` (ISO 8601) or now; `NextTransitionTime`
when the state changes again. An unknown calendar is SSM's `InvalidDocument`.

What the events may say: `DTSTART`/`DTEND` in UTC (`...Z`), with a `TZID`, or as whole days
(`VALUE=DATE`), and an `RRULE` (python-dateutil, repeated in UTC: a recurring event in a zone
with daylight saving keeps its UTC time here). `DeleteDocument` forgets a calendar;
`UpdateDocument` of its content replaces it. Other SSM requests pass through to moto.
"""

import datetime
import io
import json
import re
import threading
import zoneinfo

from dateutil.rrule import rrulestr

import iam

# Far enough to find the next transition of a yearly freeze.
HORIZON = datetime.timedelta(days=800)


class CalendarError(Exception):
    pass


def unfold(text):
    """iCalendar lines, continuation lines joined (RFC 5545, 3.1)."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif raw.strip():
            lines.append(raw)
    return lines


def parse_time(params, value):
    """A DTSTART or DTEND value as an aware UTC datetime."""
    if params.get("VALUE") == "DATE" or re.fullmatch(r"\d{8}", value):
        day = datetime.datetime.strptime(value, "%Y%m%d")
        zone = zoneinfo.ZoneInfo(params["TZID"]) if "TZID" in params else datetime.timezone.utc
        return day.replace(tzinfo=zone).astimezone(datetime.timezone.utc)
    if value.endswith("Z"):
        return datetime.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    local = datetime.datetime.strptime(value, "%Y%m%dT%H%M%S")
    zone = zoneinfo.ZoneInfo(params["TZID"]) if "TZID" in params else datetime.timezone.utc
    return local.replace(tzinfo=zone).astimezone(datetime.timezone.utc)


def parse_calendar(text):
    """(calendar type, [(start, end, rrule text or None)]) of a Change Calendar document."""
    kind = "DEFAULT_OPEN"
    events = []
    current = None
    for line in unfold(text):
        name, _, value = line.partition(":")
        name, *raw_params = name.split(";")
        params = dict(p.split("=", 1) for p in raw_params if "=" in p)
        name = name.upper()
        if name == "X-CALENDAR-TYPE":
            kind = value.strip()
            if kind not in ("DEFAULT_OPEN", "DEFAULT_CLOSED"):
                raise CalendarError(f"X-CALENDAR-TYPE {kind} is neither DEFAULT_OPEN nor DEFAULT_CLOSED")
        elif name == "BEGIN" and value.strip() == "VEVENT":
            current = {}
        elif name == "END" and value.strip() == "VEVENT" and current is not None:
            if "start" not in current or "end" not in current:
                raise CalendarError("a VEVENT needs DTSTART and DTEND")
            events.append((current["start"], current["end"], current.get("rrule")))
            current = None
        elif current is not None and name == "DTSTART":
            current["start"] = parse_time(params, value.strip())
        elif current is not None and name == "DTEND":
            current["end"] = parse_time(params, value.strip())
        elif current is not None and name == "RRULE":
            current["rrule"] = value.strip()
    return kind, events


def occurrences(events, until):
    """Every (start, end) of the events that starts before `until`."""
    for start, end, rule in events:
        if rule is None:
            if start < until:
                yield start, end
            continue
        length = end - start
        naive = start.replace(tzinfo=None)
        for occurrence in rrulestr(rule, dtstart=naive):
            occurrence = occurrence.replace(tzinfo=datetime.timezone.utc)
            if occurrence >= until:
                break
            yield occurrence, occurrence + length


def in_event(events, at):
    return any(start <= at < end for start, end in occurrences(events, at + datetime.timedelta(seconds=1)))


def state_at(calendars, at):
    """OPEN only if every calendar is open at `at`."""
    for kind, events in calendars:
        inside = in_event(events, at)
        closed = inside if kind == "DEFAULT_OPEN" else not inside
        if closed:
            return "CLOSED"
    return "OPEN"


def next_transition(calendars, at):
    """When the combined state first differs from the state at `at`, within the horizon."""
    now = state_at(calendars, at)
    edges = sorted({t for _, events in calendars
                    for start, end in occurrences(events, at + HORIZON)
                    for t in (start, end) if t > at})
    for edge in edges:
        if state_at(calendars, edge) != now:
            return edge
    return None


def iso(at):
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class ChangeCalendars:
    def __init__(self, app):
        self.app = app
        self.documents = {}
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("AmazonSSM."):
            return self.app(environ, start_response)
        operation = target.split(".", 1)[1]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = json.loads(body) if body.strip() else {}
        account = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or iam.ACCOUNT
        region = iam.REGION
        handler = {
            "CreateDocument": self.create,
            "UpdateDocument": self.update,
            "DeleteDocument": self.delete,
            "GetCalendarState": self.state,
        }.get(operation)
        if handler is None:
            return self.app(environ, start_response)
        answer = handler(params, account, region)
        if answer is None:
            return self.app(environ, start_response)
        status, payload = answer
        data = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))])
        return [data]

    def create(self, params, account, region):
        if params.get("DocumentType") != "ChangeCalendar":
            return None
        name = params.get("Name", "")
        if params.get("DocumentFormat", "JSON") != "TEXT":
            return error("InvalidDocumentContent", "A ChangeCalendar document's format is TEXT")
        try:
            parse_calendar(params.get("Content", ""))
        except (CalendarError, ValueError, zoneinfo.ZoneInfoNotFoundError) as e:
            return error("InvalidDocumentContent", f"The content of the calendar is not valid: {e}")
        with self.lock:
            if (account, region, name) in self.documents:
                return error("DocumentAlreadyExists", "The specified document already exists.")
            self.documents[(account, region, name)] = params["Content"]
        return "200 OK", {"DocumentDescription": {
            "Name": name, "DocumentType": "ChangeCalendar", "DocumentFormat": "TEXT", "Status": "Active",
            "DocumentVersion": "1", "LatestVersion": "1", "DefaultVersion": "1", "Owner": account,
            "CreatedDate": datetime.datetime.now(datetime.timezone.utc).timestamp()}}

    def update(self, params, account, region):
        key = (account, region, params.get("Name", ""))
        with self.lock:
            if key not in self.documents:
                return None
        try:
            parse_calendar(params.get("Content", ""))
        except (CalendarError, ValueError, zoneinfo.ZoneInfoNotFoundError) as e:
            return error("InvalidDocumentContent", f"The content of the calendar is not valid: {e}")
        with self.lock:
            self.documents[key] = params["Content"]
        return "200 OK", {"DocumentDescription": {"Name": key[2], "DocumentType": "ChangeCalendar",
                                                  "DocumentFormat": "TEXT", "Status": "Active"}}

    def delete(self, params, account, region):
        key = (account, region, params.get("Name", ""))
        with self.lock:
            if self.documents.pop(key, None) is None:
                return None
        return "200 OK", {}

    def state(self, params, account, region):
        names = params.get("CalendarNames") or []
        if not names:
            return error("ValidationException", "CalendarNames is required")
        calendars = []
        for name in names:
            # A name, or a document's ARN (arn:aws:ssm:REGION:ACCOUNT:document/NAME).
            key = (account, region, name)
            if name.startswith("arn:"):
                fields = name.split(":", 5)
                key = (fields[4], fields[3], fields[5].split("/", 1)[-1])
            with self.lock:
                content = self.documents.get(key)
            if content is None:
                return error("InvalidDocument", f"Document {name} does not exist or is not a ChangeCalendar")
            calendars.append(parse_calendar(content))
        at_text = params.get("AtTime")
        try:
            at = (datetime.datetime.fromisoformat(at_text.replace("Z", "+00:00")).astimezone(datetime.timezone.utc)
                  if at_text else datetime.datetime.now(datetime.timezone.utc))
        except ValueError:
            return error("ValidationException", f"AtTime {at_text} is not an ISO 8601 time")
        answer = {"State": state_at(calendars, at), "AtTime": iso(at)}
        transition = next_transition(calendars, at)
        if transition is not None:
            answer["NextTransitionTime"] = iso(transition)
        return "200 OK", answer


def error(code, message):
    return "400 Bad Request", {"__type": code, "message": message}
