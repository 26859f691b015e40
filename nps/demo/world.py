"""The demo world's fixed tables and helpers: time units, plans, regions, industries, CSM owners and
contact roles, the name tables accounts and contacts are drawn from, and the date, timestamp and
random-pick helpers the simulation steps share (``nps.demo.generator``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

DAY = 86_400
HOUR = 3_600

PLANS = ("starter", "growth", "business", "enterprise")
EMPLOYEE_BANDS = ("1-10", "11-50", "51-200", "201-1000", "1000+")
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
INDUSTRIES = ("Software", "Financial Services", "Healthcare", "Retail & E-commerce", "Manufacturing",
              "Education", "Media & Entertainment", "Logistics", "Professional Services", "Non-profit")
OWNERS = ("Maya Chen", "Lucas Ferreira", "Priya Natarajan", "Tom Becker", "Sofia Rossi", "Jamal Carter")
LEAVING_OWNER = 5  # Jamal Carter leaves mid-range; his book is reassigned in one day
SLOW_OWNER = 3  # Tom Becker follows up more slowly
ROLES = ("Admin", "Champion", "Executive Sponsor", "End User", "Billing Contact", "IT Manager",
         "Team Lead", "Operations Manager")

# Plan mix per employee band (rows follow EMPLOYEE_BANDS, columns PLANS).
_PLAN_GIVEN_BAND = np.array([
    [0.75, 0.22, 0.03, 0.00],
    [0.40, 0.45, 0.13, 0.02],
    [0.10, 0.45, 0.38, 0.07],
    [0.02, 0.20, 0.50, 0.28],
    [0.00, 0.05, 0.35, 0.60],
])
_ARR_RANGE = {"starter": (2_000, 9_600), "growth": (8_000, 52_000), "business": (40_000, 260_000),
              "enterprise": (180_000, 600_000)}
_USAGE_MEDIAN = np.array([3.0, 12.0, 30.0, 75.0, 160.0])  # sessions/day per employee band
_SEAT_CAP = np.array([10, 50, 200, 1000, 5000])
_REGION_OFFSET_H = {"NA": -6, "EMEA": 1, "APAC": 8, "LATAM": -4}  # local business hours -> UTC
_WEEKDAY_FACTOR = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.25, 0.2])  # Mon..Sun


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    days_in_month = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(d.day, days_in_month))


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def fmt_ts(ts: np.ndarray) -> np.ndarray:
    """int seconds since epoch -> '2025-01-03T14:05:00+00:00'; negative sentinel -> ''."""
    ts = np.asarray(ts, dtype=np.int64)
    out = np.char.add(np.datetime_as_string(ts.astype("datetime64[s]"), unit="s"), "+00:00")
    out = out.astype(object)
    out[ts < 0] = ""
    return out


def fmt_date(ts: np.ndarray) -> np.ndarray:
    as_dt = np.asarray(ts, dtype=np.int64).astype("datetime64[s]")
    return np.datetime_as_string(as_dt, unit="D").astype(object)


def _pick(rng: np.random.Generator, seq: tuple[str, ...] | list[str]) -> str:
    return seq[int(rng.integers(len(seq)))]


def _business_time(rng: np.random.Generator, day_ts: np.ndarray, region_offset_h: np.ndarray) -> np.ndarray:
    """A time during local business hours (8:00-19:00) on the given UTC day, as UTC seconds."""
    local = rng.uniform(8.0, 19.0, size=len(day_ts))
    return (day_ts + ((local - region_offset_h) * HOUR)).astype(np.int64)


_NAME_PREFIX = ("Blue", "North", "Apex", "Bright", "Silver", "Granite", "Nova", "Summit", "Harbor",
                "Cedar", "Vertex", "Lumen", "Iron", "Maple", "Crescent", "Pioneer", "Atlas", "Orbit",
                "Redwood", "Sterling", "Quantum", "Evergreen", "Falcon", "Horizon", "Keystone", "Lakeside",
                "Meridian", "Oak", "Pinnacle", "Riverbend", "Sage", "Tidal", "Union", "Vista", "Willow",
                "Zenith", "Aurora", "Beacon", "Cobalt", "Delta", "Ember", "Fjord", "Golden", "Highland",
                "Indigo", "Juniper", "Kestrel", "Linden", "Mosaic", "Nimbus")
_NAME_CORE = {
    "Software": ("Labs", "Software", "Systems", "Cloud", "Data", "Digital", "Apps"),
    "Financial Services": ("Capital", "Finance", "Partners", "Wealth", "Payments", "Credit"),
    "Healthcare": ("Health", "Clinics", "Care", "Medical", "Diagnostics", "Pharma"),
    "Retail & E-commerce": ("Goods", "Market", "Outfitters", "Store", "Brands", "Supply"),
    "Manufacturing": ("Industries", "Manufacturing", "Works", "Components", "Machines", "Materials"),
    "Education": ("Academy", "Learning", "Schools", "Education", "Institute", "Tutoring"),
    "Media & Entertainment": ("Media", "Studios", "Productions", "Publishing", "Sound", "Games"),
    "Logistics": ("Logistics", "Freight", "Transport", "Shipping", "Fleet", "Cargo"),
    "Professional Services": ("Consulting", "Advisors", "Group", "Associates", "Legal", "Solutions"),
    "Non-profit": ("Foundation", "Alliance", "Trust", "Network", "Initiative", "Society"),
}
_LEGAL = {"NA": ("Inc.", "LLC", "Corp.", ""), "EMEA": ("GmbH", "Ltd", "B.V.", "S.A.", "AB", ""),
          "APAC": ("Pty Ltd", "Pte. Ltd.", "K.K.", "Ltd", ""), "LATAM": ("S.A.", "Ltda.", "S.A. de C.V.", "")}
_TLD = {"NA": (".com", ".io", ".com"), "EMEA": (".de", ".co.uk", ".eu", ".com", ".nl"),
        "APAC": (".com.au", ".sg", ".jp", ".com"), "LATAM": (".com.br", ".mx", ".com", ".cl")}
_FIRST_NAMES = ("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda", "Daniel",
                "Sarah", "Ahmed", "Fatima", "Wei", "Mei", "Hiroshi", "Yuki", "Raj", "Priya", "Carlos",
                "Sofia", "Luca", "Giulia", "Hans", "Anna", "Pierre", "Camille", "Olga", "Ivan", "Kwame",
                "Amara", "Diego", "Valentina", "Noah", "Emma", "Liam", "Olivia", "Mateo", "Isabella",
                "Chen", "Aisha", "Jonas", "Lea", "Tomasz", "Zofia", "Sean", "Niamh", "Arjun", "Ananya",
                "Kenji", "Sakura", "Rafael", "Beatriz", "Erik", "Ingrid", "Omar", "Layla", "Samuel", "Grace")
_LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Lopez",
               "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Lee", "Khan", "Patel", "Singh",
               "Wang", "Li", "Zhang", "Tanaka", "Sato", "Mueller", "Schmidt", "Schneider", "Rossi",
               "Bianchi", "Dubois", "Laurent", "Ivanova", "Novak", "Kowalski", "Silva", "Santos",
               "Oliveira", "Fernandez", "Gonzalez", "Okafor", "Mensah", "Haddad", "Nielsen", "Larsen",
               "O'Brien", "Murphy", "Kim", "Park", "Nguyen", "Tran", "Cohen", "Levi", "Jansen", "de Vries")


def _slug(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())
