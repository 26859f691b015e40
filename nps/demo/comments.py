"""Comment text model for the demo generator.

Every non-empty comment is written about one latent *theme* (the ground truth the theme engine is
scored against). Text is composed from many templates per theme x slot fillers x optional
openers/closers, with case variation, typos, two-sentence comments, secondary-topic mentions,
PII (emails, phone numbers in several formats) and CSV-hostile characters (commas, double quotes,
line breaks).

All randomness comes from the ``numpy.random.Generator`` passed in, so the output is a pure
function of the seed.

Over 500 lines on purpose: about 500 of them are the phrase tables (templates, fillers, openers
per theme and language), data rather than code; the code is the ~150 lines after them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

DETRACTOR = "detractor"
PASSIVE = "passive"
PROMOTER = "promoter"
#: the sentiment truth of a theme's comments from its lean (the generator's `_truth` sentiment column)
LEAN_SENTIMENT = {DETRACTOR: "negative", PASSIVE: "neutral", PROMOTER: "positive"}


@dataclass(frozen=True)
class Theme:
    key: str
    lean: str  # detractor | passive | promoter | mixed
    weight: float
    templates: tuple[str, ...]
    slots: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mentions: tuple[str, ...] = ()  # short clauses used when another theme mentions this one
    #: sentiment each template is written with (a ``mixed`` theme's); empty = every template has the lean's
    polarity: tuple[str, ...] = ()

    def sentiment_of(self, template: int) -> str:
        """The sentiment (negative / neutral / positive) template ``template`` is written with."""
        return self.polarity[template] if self.polarity else LEAN_SENTIMENT[self.lean]


# Theme that is fixed after the first quarter / theme that only appears from the third quarter.
FIXED_THEME = "mobile_app_crashes"
EMERGING_THEME = "ai_assistant"
EMERGING_FROM_QUARTER = 2  # 0-based: third quarter

_COMMON_SLOTS: dict[str, tuple[str, ...]] = {
    "team": ("our team", "the team", "my team", "our ops team", "the finance team", "our analysts",
             "the sales team", "everyone here", "our managers", "my colleagues"),
    "time": ("every week", "every single day", "all the time", "constantly", "several times a week",
             "almost daily", "every month", "again and again"),
}

THEMES: tuple[Theme, ...] = (
    Theme(
        key="pricing_too_expensive",
        lean=DETRACTOR,
        weight=1.3,
        templates=(
            "Way too expensive for what we get.",
            "The price went up {again} and I can't justify it to {team}.",
            "Pricing is {bad_adj}, we are paying for {seats} seats and half of them are unused.",
            "Too pricey compared to {competitor}, honestly.",
            "{cap_the} renewal quote was {pct} higher than last year. That's not ok.",
            "Good product but the cost is hard to justify for a company our size.",
            "We are seriously considering {competitor} because of the price.",
            "The per-seat pricing model punishes us for growing.",
            "Overpriced. The {plan_name} plan should include {feature} without paying extra.",
            "Love the tool, hate the invoice total. Cheaper tiers please.",
            "The pricing is confusing and expensive, every add-on costs more money.",
            "Cost keeps going up while the product stays the same.",
            "It's a lot of money for a small business like ours.",
            "Our budget got cut and your subscription is the most expensive line item.",
            "Pricing needs to be more flexible, {pct} increase at renewal is too much.",
            "Not worth the price anymore, too expensive.",
        ),
        slots={
            "again": ("again", "for the second time", "without warning", "this year"),
            "bad_adj": ("steep", "ridiculous", "way too high", "hard to swallow", "excessive"),
            "seats": ("40", "25", "120", "15", "60", "300"),
            "competitor": ("Competitor X", "the other vendors", "cheaper alternatives", "open source tools",
                           "what we paid before"),
            "cap_the": ("The", "Our", "This year's"),
            "pct": ("20%", "30%", "35%", "15%", "40%", "25 percent"),
            "plan_name": ("Growth", "Business", "Starter", "basic"),
            "feature": ("SSO", "API access", "exports", "more users", "the audit log"),
        },
        mentions=("it's also too expensive", "and the price keeps going up", "not cheap either",
                  "plus the pricing is steep"),
    ),
    Theme(
        key="billing_invoice_errors",
        lean=DETRACTOR,
        weight=0.8,
        templates=(
            "We were double charged on our last invoice and it took {weeks} to get a refund.",
            "Billing is a mess, the invoice had the wrong {field} {again}.",
            "Our invoices never match the number of seats we actually have.",
            "Got charged for users we removed months ago.",
            "Invoice errors every quarter, {team} spends hours reconciling them.",
            "The billing portal showed one amount and the credit card was charged another.",
            "Please fix billing. We received {n_inv} invoices for the same period.",
            "Wrong VAT on the invoice again, our accountant is not amused.",
            "Your billing team charged us twice and nobody answers the billing emails.",
            "The invoice PDF is missing our PO number so finance rejects it every time.",
            "Incorrect charges on the invoice, had to dispute with our bank.",
            "We keep getting billed in the wrong currency.",
        ),
        slots={
            "weeks": ("three weeks", "a month", "two months", "forever", "6 weeks"),
            "field": ("company address", "tax ID", "PO number", "billing contact", "amount", "VAT number"),
            "again": ("again", "twice", "for the third time", "once more"),
            "n_inv": ("two", "three", "2", "3"),
        },
        mentions=("and billing keeps sending wrong invoices", "also our invoice was wrong again",
                  "plus we got double charged"),
    ),
    Theme(
        key="slow_performance",
        lean=DETRACTOR,
        weight=1.1,
        templates=(
            "The app is so slow, pages take {secs} to load.",
            "Performance has gotten worse, {page} takes forever to load.",
            "Everything is sluggish since the last update.",
            "Slow, slow, slow. Loading {page} with our data takes minutes.",
            "Dashboards time out when we filter on more than a few months of data.",
            "Search is painfully slow for large accounts like ours.",
            "Too much waiting for pages to load, it kills productivity.",
            "The web app freezes and lags {time}.",
            "Speed is the main issue. {page} is unusable during peak hours.",
            "It's really slow when {team} is all logged in at the same time.",
            "Loading times are terrible, sometimes over a minute.",
            "Great features but the performance is awful, it's just too slow.",
        ),
        slots={
            "secs": ("10 seconds", "30 seconds", "ages", "forever", "more than a minute", "20+ seconds"),
            "page": ("the dashboard", "the reports page", "the contact list", "search", "the home screen",
                     "the analytics tab"),
        },
        mentions=("and it's very slow", "also loading times are bad", "plus performance is poor"),
    ),
    Theme(
        key="mobile_app_crashes",
        lean=DETRACTOR,
        weight=1.5,
        templates=(
            "The mobile app crashes every time I open {screen}.",
            "iOS app keeps crashing after the latest update.",
            "The Android app crashes {time}, I can't use it on the road.",
            "Mobile app is unusable, it crashes as soon as I try to {action}.",
            "Your app crashed {n} times during a customer visit today. Embarrassing.",
            "Phone app force closes when uploading photos.",
            "Since the update the app on my iPhone just closes itself.",
            "The mobile app keeps crashing and I lose my notes.",
            "App crashes on startup on my {device}.",
            "Please fix the crashing mobile app, my field team depends on it.",
            "mobile app crash on login, reinstalling didn't help",
            "The app on my phone freezes and crashes whenever I {action}.",
        ),
        slots={
            "screen": ("the calendar", "notifications", "the inbox", "a report", "the map view", "settings"),
            "action": ("sync", "upload a file", "open a report", "log in", "scan a document", "take a photo"),
            "n": ("3", "four", "five", "two", "6"),
            "device": ("Samsung", "Pixel 8", "iPad", "iPhone 15", "Android tablet"),
        },
        mentions=("and the mobile app keeps crashing", "also the app crashes on my phone",
                  "plus the iOS app crashes"),
    ),
    Theme(
        key="support_slow_response",
        lean=DETRACTOR,
        weight=1.1,
        templates=(
            "Support takes {days} to answer a simple ticket.",
            "I opened a ticket {ago} and still no response from support.",
            "Customer support is slow and we keep getting copy-paste answers.",
            "Waiting {days} for a support reply is not acceptable for a paid plan.",
            "Support response times are terrible lately.",
            "Nobody from support ever calls back, I had to chase them {n} times.",
            "Your support queue is way too slow, our issue was urgent.",
            "Took forever for support to respond and the ticket was closed without a fix.",
            "Slow support. Tickets sit there for days.",
            "We pay for premium support but the response time is no better than free email.",
            "The support chat says 'we'll get back to you' and then nothing for days.",
            "Support is unreachable when we need them, we waited {days} on a P1 issue.",
        ),
        slots={
            "days": ("3 days", "a week", "five days", "2 weeks", "days", "over a week"),
            "ago": ("last week", "two weeks ago", "10 days ago", "a month ago"),
            "n": ("three", "4", "five", "several"),
        },
        mentions=("and support takes days to reply", "also support was slow to respond",
                  "plus nobody answers support tickets"),
    ),
    Theme(
        key="data_sync_bugs",
        lean=DETRACTOR,
        weight=0.9,
        templates=(
            "The sync with {system} keeps failing and we end up with duplicate records.",
            "Data doesn't sync between {system} and your platform, we lose updates.",
            "Sync bugs are driving us crazy, contacts disappear after the nightly sync.",
            "Half our records are out of sync with {system}.",
            "The integration sync creates duplicates {time}.",
            "Data is missing after every sync, we can't trust the numbers.",
            "Sync errors with no explanation, just 'sync failed'.",
            "Fields get overwritten with old values when the sync runs.",
            "We had to rebuild our data twice because the sync corrupted it.",
            "Two-way sync with {system} is broken since {when}.",
            "Syncing is unreliable, records show up hours late or not at all.",
        ),
        slots={
            "system": ("Salesforce", "HubSpot", "our ERP", "NetSuite", "Google Sheets", "Zendesk", "SAP"),
            "when": ("March", "the last release", "the migration", "two weeks", "the update"),
        },
        mentions=("and the sync creates duplicates", "also data keeps going out of sync",
                  "plus sync errors"),
    ),
    Theme(
        key="onboarding_confusing",
        lean=DETRACTOR,
        weight=0.8,
        templates=(
            "Onboarding was confusing, we didn't know where to start.",
            "The setup process is complicated and the docs are outdated.",
            "Getting started took us {weeks}, the onboarding could be much clearer.",
            "Our onboarding manager changed twice and we had to explain everything again.",
            "Initial setup was a nightmare, too many steps and unclear instructions.",
            "The onboarding videos don't match what the product looks like now.",
            "It was hard to get {team} set up, no clear guide for admins.",
            "Importing our data during onboarding was painful and confusing.",
            "Onboarding felt rushed, we were left alone after {n} calls.",
            "Setup wizard is confusing, we configured things wrong and had to start over.",
            "The first weeks were rough, onboarding needs a proper checklist.",
        ),
        slots={
            "weeks": ("6 weeks", "two months", "way too long", "a month", "much longer than promised"),
            "n": ("two", "2", "three", "one"),
        },
        mentions=("and onboarding was confusing", "also the setup was complicated",
                  "plus getting started was hard"),
    ),
    Theme(
        key="missing_integrations",
        lean=PASSIVE,
        weight=1.0,
        templates=(
            "Would be great to have an integration with {tool}.",
            "Missing a native {tool} integration, we rely on Zapier workarounds.",
            "We need better integrations, especially {tool} and {tool2}.",
            "No {tool} integration is a dealbreaker for some of our teams.",
            "Please add an integration with {tool}, it's the one thing we miss.",
            "The API is limited and there's no connector for {tool}.",
            "Good tool but it doesn't connect to {tool}, so we copy data by hand.",
            "Integrations are lacking compared to other tools, {tool} support please.",
            "If you had a proper {tool} integration I would give you a 10.",
            "We'd love webhooks and a {tool} connector.",
            "Still waiting for the {tool} integration you promised last year.",
        ),
        slots={
            "tool": ("Slack", "Microsoft Teams", "Jira", "SAP", "Workday", "Snowflake", "Power BI",
                     "QuickBooks", "Shopify", "Outlook", "Google Drive"),
            "tool2": ("Teams", "Jira", "Snowflake", "Outlook", "Asana", "Xero"),
        },
        mentions=("and we still need a {tool} integration", "also more integrations please",
                  "plus an integration with {tool} would help"),
    ),
    Theme(
        key="reporting_limits",
        lean=PASSIVE,
        weight=1.0,
        templates=(
            "Reporting is too limited, we can't build the reports we need.",
            "The reports are basic, we export everything to Excel to do real analysis.",
            "Custom reports are missing {what}.",
            "Dashboards are nice but you can't {action} in reports.",
            "We need more flexible reporting, for example {what}.",
            "The \"Export to Excel\" button cuts off after {rows} rows, please fix the export limit.",
            "Reporting needs work: no {what}, no scheduled reports.",
            "I wish the analytics were deeper, the standard reports don't answer our questions.",
            "Report builder is too rigid, can't filter by {dim}.",
            "We'd give a higher score with better reporting and dashboards.",
            "The reports only show 12 months, we need longer history.",
        ),
        slots={
            "what": ("pivot tables", "custom fields", "cohort views", "calculated columns",
                     "year over year comparisons", "drill downs"),
            "action": ("group by custom fields", "schedule emails", "compare periods", "share with clients",
                       "add calculated fields"),
            "rows": ("10,000", "5000", "1,000", "50k"),
            "dim": ("region", "team", "custom fields", "date ranges", "owner"),
        },
        mentions=("and the reporting is limited", "also reports need more options",
                  "plus the export limit in reports"),
    ),
    Theme(
        key="great_support_team",
        lean=PROMOTER,
        weight=1.3,
        templates=(
            "Your support team is amazing, {name} solved our issue in minutes.",
            "Great support! Always fast and friendly.",
            "Customer support is the best I've dealt with, very responsive.",
            "{name} from support went above and beyond for us.",
            "Support team is fantastic, they actually understand the product.",
            "Whenever we have a question, support answers quickly and clearly.",
            "The customer success team is super helpful and proactive.",
            "Excellent support, our CSM {name} is a star.",
            "Helpful, knowledgeable support staff. Thank you!",
            "Support fixed our problem the same day, really impressed.",
            "Your support people are friendly and they follow up, which is rare.",
            "Best customer service of any vendor we use.",
        ),
        slots={
            "name": ("Anna", "Marco", "Sarah", "Kenji", "Lena", "David", "Fatima", "Jorge", "Emily", "Raj"),
        },
        mentions=("and the support team is great", "also support is very helpful",
                  "plus your support people are excellent"),
    ),
    Theme(
        key="easy_to_use",
        lean=PROMOTER,
        weight=1.4,
        templates=(
            "Very easy to use, {team} picked it up in a day.",
            "Simple, intuitive and clean interface.",
            "Easy to use and easy to set up. Love it!",
            "The UI is intuitive, no training needed.",
            "So user friendly, even our least technical people use it.",
            "Easy to learn, easy to use, does what it says.",
            "Clean design and super intuitive, it just works.",
            "I like how simple everything is, no clutter.",
            "The interface is easy to navigate and makes sense.",
            "Really straightforward to use compared to {competitor}.",
            "Intuitive product, our new hires get going without a manual.",
            "Easy!! Simple to use and the layout is clear.",
        ),
        slots={
            "competitor": ("our old tool", "the previous vendor", "other tools we tried", "Excel"),
        },
        mentions=("and it's easy to use", "the interface is intuitive though",
                  "it's simple to use at least"),
    ),
    Theme(
        key="time_savings",
        lean=PROMOTER,
        weight=1.1,
        templates=(
            "Saves us hours every week, {team} would not go back.",
            "The automation saves {team} {hours} a week.",
            "We cut our reporting time in half thanks to the workflows.",
            "Huge time saver, tasks that took a day now take minutes.",
            "The automations save us so much manual work.",
            "Productivity went way up since we switched, we save {hours} a month.",
            "It automates all the boring stuff so we can focus on customers.",
            "Workflows and templates save us a ton of time.",
            "Made our process much faster, saves time {time}.",
            "We replaced three spreadsheets and save hours of copy and paste.",
            "Automated reminders alone save me half a day per week.",
        ),
        slots={
            "hours": ("10 hours", "hours", "a full day", "20+ hours", "about 5 hours", "many hours"),
        },
        mentions=("and it saves us a lot of time", "the automation saves hours though",
                  "it still saves us time"),
    ),
    Theme(
        key="ai_assistant",
        lean="mixed",
        weight=1.2,
        templates=(
            "The new AI assistant is {good_adj}, it drafts {thing} for me.",
            "Love the AI assistant, it summarizes {thing} in seconds.",
            "The AI assistant gives wrong answers half the time.",
            "AI copilot is a great addition, {team} uses it {time}.",
            "The AI summaries are {good_adj} but sometimes make things up.",
            "Not sure about the AI assistant, the suggestions are often irrelevant.",
            "The AI features are impressive, especially the assistant for {thing}.",
            "Please let us turn off the AI assistant, it keeps popping up.",
            "AI assistant answered my question better than the docs.",
            "The new AI copilot saves time writing {thing}.",
            "The AI assistant needs to respect our data privacy settings before we enable it.",
            "The AI chat in the app is surprisingly useful.",
        ),
        slots={
            "good_adj": ("great", "really useful", "a game changer", "handy", "pretty good", "impressive"),
            "thing": ("emails", "meeting notes", "reports", "customer replies", "long threads",
                      "ticket summaries"),
        },
        mentions=("and the new AI assistant is nice", "also the AI assistant is hit or miss",
                  "plus the AI copilot helps"),
        # one per template above: praise, complaints, and "great but makes things up" / "only once
        # it respects our privacy settings" as neutral
        polarity=("positive", "positive", "negative", "positive", "neutral", "negative",
                  "positive", "negative", "positive", "positive", "neutral", "positive"),
    ),
)

THEME_BY_KEY: dict[str, Theme] = {t.key: t for t in THEMES}
THEME_KEYS: tuple[str, ...] = tuple(t.key for t in THEMES)

CONTENT_FREE: tuple[str, ...] = ("n/a", "N/A", "nothing", "no comment", "-", "none", "None", "nope",
                                 ".", "no", "Nothing to add", "nothing really", "na", "no comments")

_OPENERS: dict[str, tuple[str, ...]] = {
    DETRACTOR: ("Honestly, ", "To be honest, ", "Sorry but ", "Frankly, ", "Well, ", "Not happy. ",
                "Frustrated. ", "Where do I start. ", "Disappointed. ", "Ugh. ", "Main issue: ",
                "Biggest problem: ", "Hmm, "),
    PASSIVE: ("Overall ok. ", "It's fine but ", "Good product, but ", "Mostly good. ", "Decent. ",
              "Not bad. ", "One thing: ", "Suggestion: ", "Solid tool, however ", "Pretty good, but "),
    PROMOTER: ("Love it! ", "Great product. ", "Very happy. ", "Awesome. ", "Thanks! ",
               "Really good. ", "10/10. ", "Overall great. ", "Happy customer here. ", "Fantastic, "),
}
_CLOSERS: dict[str, tuple[str, ...]] = {
    DETRACTOR: ("Please fix this.", "We are looking at alternatives.", "Not acceptable.",
                "Very disappointing.", "Fix it or we leave.", "This needs to improve.", ":(",
                "Really frustrating.", "Otherwise the product is ok."),
    PASSIVE: ("Otherwise fine.", "Other than that it's good.", "Would be a 9 with that.",
              "Keep improving!", "Thanks.", "Still a solid product."),
    PROMOTER: ("Keep it up!", "Thank you!", "Great job.", "Highly recommend.", ":)", "Thanks team!",
               "Keep up the good work.", "We'll renew for sure."),
}

# Small translated template sets for non-English surveys (ground truth keeps the theme key).
_TRANSLATED: dict[str, dict[str, tuple[str, ...]]] = {
    "de": {
        "pricing_too_expensive": ("Viel zu teuer für das, was wir bekommen.",
                                  "Der Preis ist schon wieder gestiegen, das ist zu teuer."),
        "great_support_team": ("Der Support ist super, schnell und freundlich.",
                               "Sehr hilfsbereites Support-Team, danke!"),
        "easy_to_use": ("Sehr einfach zu bedienen und übersichtlich.",
                        "Intuitive Oberfläche, leicht zu lernen."),
        "slow_performance": ("Die Anwendung ist sehr langsam, Seiten laden ewig.",),
        "support_slow_response": ("Der Support antwortet erst nach Tagen auf unsere Tickets.",),
    },
    "fr": {
        "pricing_too_expensive": ("Beaucoup trop cher pour ce que c'est.", "Le prix a encore augmenté."),
        "great_support_team": ("Le support est excellent, très réactif.", "Équipe support très sympa."),
        "easy_to_use": ("Très facile à utiliser, interface claire.",),
        "slow_performance": ("L'application est lente, les pages mettent longtemps à charger.",),
        "support_slow_response": ("Le support met des jours à répondre.",),
    },
    "es": {
        "pricing_too_expensive": ("Demasiado caro para lo que ofrece.", "El precio sube cada año."),
        "great_support_team": ("El equipo de soporte es excelente y rápido.",),
        "easy_to_use": ("Muy fácil de usar, la interfaz es clara.", "Sencillo e intuitivo."),
        "slow_performance": ("La plataforma es muy lenta, las páginas tardan mucho.",),
        "support_slow_response": ("El soporte tarda días en responder.",),
    },
    "pt": {
        "pricing_too_expensive": ("Muito caro para o que entrega.",),
        "great_support_team": ("O suporte é ótimo, muito atencioso.",),
        "easy_to_use": ("Muito fácil de usar, interface intuitiva.",),
        "slow_performance": ("O sistema está muito lento.",),
        "support_slow_response": ("O suporte demora dias para responder.",),
    },
}

_FIRST = ("jane", "john", "maria", "li", "ahmed", "sophie", "carlos", "emma", "raj", "olga", "tom",
          "nina", "peter", "yuki", "fatima", "lucas", "anna", "mike", "chloe", "omar")
_LAST = ("doe", "smith", "garcia", "wang", "khan", "martin", "silva", "mueller", "patel", "ivanova",
         "brown", "rossi", "schmidt", "tanaka", "haddad", "costa", "novak", "lee", "dubois", "okafor")
_DOMAINS = ("acme.io", "example.com", "globex.com", "initech.net", "umbrella.co.uk", "contoso.com",
            "northwind.de", "fabrikam.com.br", "hooli.com", "wayne-ent.com", "gmail.com", "outlook.com")


def theme_active(key: str, quarter_index: int) -> bool:
    """Whether a theme can be mentioned in the given (0-based) quarter of the generated range."""
    if key == FIXED_THEME:
        return quarter_index == 0
    if key == EMERGING_THEME:
        return quarter_index >= EMERGING_FROM_QUARTER
    return True


def active_quarters(key: str, n_quarters: int) -> list[int]:
    return [q for q in range(n_quarters) if theme_active(key, q)]


class CommentModel:
    """Draws (comment, theme_key, has_pii, sentiment) for one response at a time."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    # -- small helpers -------------------------------------------------------------------------
    def _pick(self, seq: tuple[str, ...] | list[str]) -> str:
        return seq[int(self.rng.integers(len(seq)))]

    def _fill(self, template: str, theme: Theme) -> str:
        names = re.findall(r"{(\w+)}", template)
        values: dict[str, str] = {}
        for name in names:
            if name in values:
                continue
            pool = theme.slots.get(name) or _COMMON_SLOTS.get(name)
            if pool is None:
                for other in THEMES:  # mentions may borrow another theme's slots ({tool})
                    if name in other.slots:
                        pool = other.slots[name]
                        break
            values[name] = self._pick(pool) if pool else name
        return template.format(**values)

    def theme_weights(self, category: str, quarter_index: int, ctx: dict[str, object]) -> np.ndarray:  # noqa: C901, PLR0912 - one seeded simulation step: it draws from its stream in a fixed order, splitting it is a determinism refactor of its own
        lean_factor = {
            DETRACTOR: {DETRACTOR: 1.0, PASSIVE: 0.45, "mixed": 0.5, PROMOTER: 0.03},
            PASSIVE: {DETRACTOR: 0.35, PASSIVE: 1.0, "mixed": 0.8, PROMOTER: 0.35},
            PROMOTER: {DETRACTOR: 0.03, PASSIVE: 0.25, "mixed": 1.0, PROMOTER: 1.0},
        }[category]
        plan = ctx.get("plan")
        trigger = ctx.get("trigger_event")
        band = ctx.get("employee_band")
        tenure_days = ctx.get("tenure_days")
        channel = ctx.get("channel")
        n_quarters_seen = quarter_index
        w = np.zeros(len(THEMES))
        for i, t in enumerate(THEMES):
            if not theme_active(t.key, quarter_index):
                continue
            m = t.weight * lean_factor[t.lean]
            if t.key == "pricing_too_expensive":
                m *= {"starter": 1.6, "growth": 1.3, "business": 0.9, "enterprise": 0.6}.get(str(plan), 1.0)
                if n_quarters_seen >= 2:  # list-price increase in the second half of the range
                    m *= 1.5
            elif t.key == "billing_invoice_errors":
                m *= 1.5 if plan in ("business", "enterprise") else 0.8
            elif t.key == "slow_performance":
                m *= 1.6 if band in ("201-1000", "1000+") else 0.8
            elif t.key == "support_slow_response":
                m *= 3.0 if trigger == "support_ticket_closed" else 0.8
            elif t.key == "great_support_team":
                m *= 2.5 if trigger == "support_ticket_closed" else 0.8
            elif t.key == "onboarding_confusing":
                if trigger == "onboarding":
                    m *= 4.0
                elif isinstance(tenure_days, int | float) and tenure_days < 183:
                    m *= 2.0
                else:
                    m *= 0.4
            elif t.key == "easy_to_use" and trigger == "onboarding":
                m *= 1.5
            elif t.key == "ai_assistant":
                m *= 3.0 if trigger == "feature_release" else 1.0
                m *= 1.0 + 0.4 * (quarter_index - EMERGING_FROM_QUARTER)
            elif t.key == "mobile_app_crashes":
                m *= 1.6 if channel == "in_app" else 1.0
            elif t.key == "missing_integrations":
                m *= 1.3 if plan in ("business", "enterprise") else 0.9
            w[i] = m
        return w / w.sum()

    def _typo(self, text: str) -> str:
        words = text.split(" ")
        candidates = [i for i, wd in enumerate(words) if len(wd) >= 5 and wd.isalpha()]
        if not candidates:
            return text
        i = candidates[int(self.rng.integers(len(candidates)))]
        wd = words[i]
        kind = int(self.rng.integers(3))
        j = int(self.rng.integers(1, len(wd) - 2))
        if kind == 0:  # swap two neighbouring letters
            wd = wd[:j] + wd[j + 1] + wd[j] + wd[j + 2:]
        elif kind == 1:  # drop a letter
            wd = wd[:j] + wd[j + 1:]
        else:  # double a letter
            wd = wd[:j] + wd[j] + wd[j:]
        words[i] = wd
        return " ".join(words)

    def _email(self) -> str:
        first, last = self._pick(_FIRST), self._pick(_LAST)
        style = int(self.rng.integers(4))
        local = (f"{first}.{last}", f"{first}{last[0]}", f"{first[0]}{last}", f"{first}_{last}")[style]
        return f"{local}@{self._pick(_DOMAINS)}"

    def _phone(self) -> str:
        r = self.rng
        fmt = int(r.integers(7))

        def d(n: int) -> str:  # n random digits
            return "".join(str(int(x)) for x in r.integers(0, 10, size=n))

        area = str(int(r.integers(201, 990)))
        line = f"01{d(2)}"  # 555-01xx: reserved for fiction
        if fmt == 0:
            return f"({area}) 555-{line}"
        if fmt == 1:
            return f"{area}.555.{line}"
        if fmt == 2:
            return f"{area}-555-{line}"
        if fmt == 3:
            return f"+44 20 7946 0{d(3)}"
        if fmt == 4:
            return f"+49 30 {d(6)}"
        if fmt == 5:
            return f"+1 {area} 555 {line}"
        return f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}"

    def _pii_sentence(self, category: str) -> str:
        if self.rng.random() < 0.5:
            value = self._email()
            pool: tuple[str, ...] = ("Reach me at {v}", "Email me at {v} if you want details.", "contact me: {v}",
                                     "You can reach me at {v}.", "My email is {v}", "please write to {v}")
        else:
            value = self._phone()
            pool = ("Call me at {v}", "My number is {v}.", "call me on {v} please",
                    "Feel free to call {v}.", "phone: {v}", "Reach me on {v} any time.")
        if category == PROMOTER:
            pool = pool + ("Happy to be a reference, {v}",)
        return self._pick(pool).format(v=value)

    # -- public --------------------------------------------------------------------------------
    def make(self, category: str, quarter_index: int, ctx: dict[str, object]) -> tuple[str, str, bool, str]:  # noqa: C901, PLR0912 - one seeded simulation step: it draws from its stream in a fixed order, splitting it is a determinism refactor of its own
        """Return (comment, theme_key, has_pii, sentiment); theme_key is '' for empty/content-free
        comments. ``sentiment`` is what the theme's text was written with (the lean's, a mixed theme's
        template's; '' for empty / content-free comments and for two sentences of a mixed theme that
        disagree); openers, closers and secondary clauses follow the score category and are not in it."""
        r = self.rng
        channel = ctx.get("channel")
        p_empty = {"in_app": 0.24, "web": 0.14, "email": 0.11}.get(str(channel), 0.15)
        if category == PASSIVE:
            p_empty += 0.03
        u = r.random()
        if u < p_empty:
            return "", "", False, ""
        if u < p_empty + 0.03:
            return self._pick(CONTENT_FREE), "", False, ""

        weights = self.theme_weights(category, quarter_index, ctx)
        theme = THEMES[int(r.choice(len(THEMES), p=weights))]
        language = str(ctx.get("language") or "en")
        if language != "en" and language in _TRANSLATED:
            table = _TRANSLATED[language]
            if theme.key not in table:
                keys = sorted(table)
                kw = np.array([weights[THEME_KEYS.index(k)] for k in keys]) + 1e-9
                theme = THEME_BY_KEY[keys[int(r.choice(len(keys), p=kw / kw.sum()))]]
            return self._pick(table[theme.key]), theme.key, False, LEAN_SENTIMENT.get(theme.lean, "")

        first = int(r.integers(len(theme.templates)))
        text = self._fill(theme.templates[first], theme)
        sentiment = theme.sentiment_of(first)
        # Second sentence: another template of the same theme or a closer.
        if r.random() < 0.25:
            if r.random() < 0.5:
                other_t = (first + 1 + int(r.integers(len(theme.templates) - 1))) % len(theme.templates)
                second = self._fill(theme.templates[other_t], theme)
                if theme.sentiment_of(other_t) != sentiment:
                    sentiment = ""
            else:
                second = self._pick(_CLOSERS[category])
            sep = "\n" if r.random() < 0.2 else " "
            text = f"{text}{sep}{second}"
        # Secondary topic: a short clause about another active theme.
        if r.random() < 0.10:
            others = [t for t in THEMES if t.key != theme.key and t.mentions
                      and theme_active(t.key, quarter_index)]
            other = others[int(r.integers(len(others)))]
            clause = self._fill(self._pick(other.mentions), other)
            text = f"{text.rstrip('.!')}, {clause}."
        if r.random() < 0.30:
            opener = self._pick(_OPENERS[category])
            word = text.split(" ", 1)[0]
            if not opener.endswith((". ", "! ")) and word != "I" and not word[1:2].isupper():
                text = text[0].lower() + text[1:]  # "Honestly, the app..." but keep "AI", "I", "iOS"
            text = opener + text
        # Case variation and typos (before PII, so emails and numbers stay intact).
        v = r.random()
        if v < 0.10:
            text = text.lower()
        elif v < 0.12 and category == DETRACTOR:
            text = text.upper()
        elif v < 0.16:
            text = text.rstrip(".")
        if r.random() < 0.12:
            text = self._typo(text)
            if r.random() < 0.3:
                text = self._typo(text)
        has_pii = False
        if r.random() < 0.035:
            has_pii = True
            pii = self._pii_sentence(category)
            if not text.endswith((".", "!", "?")):
                text += "."
            text = f"{text} {pii}"
        return text, theme.key, has_pii, sentiment
