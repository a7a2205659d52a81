"""The sentence grammar of the mini_synth corpus.

Sentences are assistant-style requests and statements built from numbers, dates,
times, places, names, commands and spelled letters, so that a model has to
recognise several hundred words (not memorise a few phrases). A sentence is a
list of tokens; a spelled letter is written "_x" so that the synthesiser can say
the letter's name ("a" as a letter is /eI/, not the article) while the
transcript holds the plain letter.

Everything is driven by one random.Random, so a seed gives one sentence on any
machine and Python version (random.Random with an int seed is stable).
"""
from __future__ import annotations

import random
import re
from typing import Callable, List, Sequence, Set

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORD_ONES = ("_ first second third fourth fifth sixth seventh eighth ninth tenth eleventh "
            "twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth "
            "nineteenth").split()
ORD_TENS = {20: "twentieth", 30: "thirtieth"}
MONTHS = ("january february march april may june july august september october "
          "november december").split()
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
CITIES = ("london paris berlin madrid rome vienna prague warsaw dublin lisbon oslo "
          "stockholm helsinki athens cairo nairobi lagos tokyo osaka seoul beijing "
          "shanghai delhi mumbai sydney melbourne auckland toronto montreal vancouver "
          "boston chicago denver houston dallas austin seattle portland phoenix miami "
          "atlanta detroit memphis nashville orlando tampa brooklyn manchester leeds "
          "glasgow edinburgh cardiff bristol liverpool oxford cambridge geneva zurich "
          "brussels amsterdam hamburg munich milan naples venice florence").split()
NAMES = ("john mary james linda robert susan michael sarah david karen william emma "
         "richard lisa thomas anna daniel laura paul grace mark helen steven alice "
         "kevin julia brian rachel george nancy edward ruth peter amy frank kate "
         "henry olivia jack sophie oscar lucy harry chloe victor maria carlos diego "
         "pedro ahmed omar priya raj mei chen yuki hans greta ivan").split()
ROOMS = ("kitchen bedroom bathroom garage office hallway basement attic garden "
         "living dining nursery study porch laundry").split()
ROOM_SUFFIX = {"living": "room", "dining": "room", "laundry": "room"}
DEVICES = ("lights lamp fan heater radio television oven kettle dishwasher computer "
           "printer speaker fridge camera alarm sprinkler").split()
OPENABLES = "door window blinds curtains gate shutters".split()
FOODS = ("apples bananas oranges lemons grapes carrots onions potatoes tomatoes "
         "peppers eggs bagels muffins cookies lettuce cucumbers peaches pears "
         "plums cherries strawberries melons beans noodles pancakes").split()
NOUNS = ("books chairs tables boxes bottles cups plates pencils tickets letters "
         "keys coins shirts shoes jackets bags glasses windows doors candles "
         "flowers trees birds dogs cats horses students children visitors").split()
COLORS = "red blue green yellow orange purple black white brown pink grey silver".split()
STREETS = ("main oak maple pine cedar elm lake hill park river church market "
           "station bridge mill spring sunset highland").split()
STREET_KINDS = "street avenue road lane drive boulevard".split()
BUSINESSES = ("pharmacy bakery restaurant hotel hospital museum library cinema "
              "supermarket bank school airport stadium cafe gym theater").split()
GENRES = "jazz rock classical country blues reggae folk pop soul piano".split()
TASKS = ("buy milk", "pay the rent", "water the plants", "feed the cat",
         "walk the dog", "call the doctor", "pick up the kids", "book a table",
         "renew my passport", "clean the garage", "send the report",
         "return the library books", "take my vitamins", "charge my phone",
         "check the mail", "wash the car", "bring an umbrella", "finish the slides")
MESSAGES = ("i am running late", "see you soon", "happy birthday",
            "the meeting is cancelled", "dinner is ready", "i will call you back",
            "don't forget the tickets", "i'm on my way", "we need more coffee",
            "thanks for your help", "it's raining here", "the train is delayed")
SPELL_WORDS = ("bat cat dog fox hat jam kid lip map net owl pig quiz rug sun "
               "van web yak zip box cup egg fig gum ink jet key log mud nut "
               "pen rat sky toy vet wax yes zoo").split()
WHEN = ("today", "tonight", "tomorrow", "this weekend", "next week",
        "tomorrow morning", "this afternoon", "this evening")


def cardinal(n: int) -> List[str]:
    """Words for 0 <= n < 1,000,000 in the American style ("one hundred five")."""
    if n < 0 or n >= 1_000_000:
        raise ValueError(f"cardinal out of range: {n}")
    if n < 20:
        return [ONES[n]]
    if n < 100:
        return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [ONES[n // 100], "hundred"] + (cardinal(n % 100) if n % 100 else [])
    return cardinal(n // 1000) + ["thousand"] + (cardinal(n % 1000) if n % 1000 else [])


def ordinal(n: int) -> List[str]:
    """Words for the ordinals 1..31 that dates need ("twenty first")."""
    if n < 20:
        return [ORD_ONES[n]]
    if n % 10 == 0:
        return [ORD_TENS[n]]
    return [TENS[n // 10], ORD_ONES[n % 10]]


def letters(word: str) -> List[str]:
    return ["_" + c for c in word]


def digits(r: random.Random, n: int) -> List[str]:
    return [("oh" if d == 0 and r.random() < 0.3 else ONES[d]) for d in (r.randrange(10) for _ in range(n))]


def date(r: random.Random) -> List[str]:
    m = r.randrange(12)
    d = r.randint(1, MONTH_DAYS[m])
    if r.random() < 0.3:
        return ["the"] + ordinal(d) + ["of", MONTHS[m]]
    return [MONTHS[m]] + ordinal(d)


def day(r: random.Random) -> List[str]:
    x = r.random()
    if x < 0.4:
        return ["on", r.choice(WEEKDAYS)]
    if x < 0.75:
        return ["on"] + date(r)
    return r.choice(WHEN).split()


def clock(r: random.Random) -> List[str]:
    h = r.randint(1, 12)
    x = r.random()
    if x < 0.1:
        return [r.choice(("noon", "midnight"))]
    if x < 0.25:
        return w(r.choice(("quarter past", "half past", "quarter to"))) + cardinal(h)
    m = r.choice((0, 0, 5, 10, 15, 20, 25, 30, 30, 35, 40, 45, 45, 50, 55, r.randrange(60)))
    words = cardinal(h)
    if m == 0:
        words.append("o'clock")
    elif m < 10:
        words += ["oh", ONES[m]]
    else:
        words += cardinal(m)
    if r.random() < 0.6:
        words += ["_p", "_m"] if r.random() < 0.5 else ["_a", "_m"]
    return words


def room(r: random.Random) -> List[str]:
    name = r.choice(ROOMS)
    return [name, ROOM_SUFFIX[name]] if name in ROOM_SUFFIX else [name]


def address(r: random.Random) -> List[str]:
    return cardinal(r.randint(1, 2999)) + [r.choice(STREETS), r.choice(STREET_KINDS)]


def w(text: str) -> List[str]:
    return text.split()


# Each template returns a token list; they are weighted equally.
def _home(r):
    x = r.random()
    if x < 0.35:
        return w(f"turn {r.choice(('on', 'off'))} the") + room(r) + [r.choice(DEVICES)]
    if x < 0.55:
        return w("dim the") + room(r) + w("lights to") + cardinal(r.randrange(5, 100, 5)) + ["percent"]
    if x < 0.75:
        return w("set the thermostat in the") + room(r) + ["to"] + cardinal(r.randint(55, 85)) + ["degrees"]
    return [r.choice(("open", "close", "lock", "unlock")), "the"] + room(r) + [r.choice(OPENABLES)]


def _call(r):
    x = r.random()
    if x < 0.4:
        return ["call", r.choice(NAMES)] + (["at"] + clock(r) if r.random() < 0.7 else day(r))
    if x < 0.7:
        return w(f"send a message to {r.choice(NAMES)} saying {r.choice(MESSAGES)}")
    return w("my phone number is") + digits(r, 3) + digits(r, 4)


def _calendar(r):
    x = r.random()
    if x < 0.4:
        return w(f"schedule a meeting with {r.choice(NAMES)}") + day(r) + ["at"] + clock(r)
    if x < 0.7:
        return w(f"remind me to {r.choice(TASKS)}") + day(r)
    return w("what do i have") + day(r)


def _travel(r):
    a, b = r.sample(CITIES, 2)
    x = r.random()
    if x < 0.35:
        return w(f"book a flight from {a} to {b}") + day(r)
    if x < 0.55:
        return w(f"how far is {a} from {b}")
    if x < 0.8:
        return w(f"what is the weather in {a}") + day(r)
    return w(f"what time is it in {a}")


def _numbers(r):
    x = r.random()
    if x < 0.2:
        return w("set a timer for") + cardinal(r.randint(1, 90)) + [r.choice(("minutes", "seconds", "hours"))]
    if x < 0.4:
        return ["add"] + cardinal(r.randint(2, 24)) + [r.choice(FOODS)] + w("to my shopping list")
    if x < 0.6:
        return w("the total is") + cardinal(r.randint(1, 9999)) + ["dollars", "and"] + cardinal(r.randint(1, 99)) + ["cents"]
    if x < 0.8:
        op = r.choice(("plus", "minus", "times"))
        return w("what is") + cardinal(r.randint(0, 999)) + [op] + cardinal(r.randint(0, 99))
    return w("the population is about") + cardinal(r.randint(1000, 999999))


def _spell(r):
    x = r.random()
    if x < 0.5:
        return ["spell"] + letters(r.choice(SPELL_WORDS))
    if x < 0.8:
        code = [("_" + chr(97 + r.randrange(26))) if r.random() < 0.6 else ONES[r.randrange(10)]
                for _ in range(r.randint(3, 6))]
        return w(f"the {r.choice(('code', 'password', 'flight number', 'license plate'))} is") + code
    return w("my initials are") + letters("".join(chr(97 + r.randrange(26)) for _ in range(r.randint(2, 3))))


def _places(r):
    x = r.random()
    if x < 0.35:
        return w(f"take me to the {r.choice(BUSINESSES)} on") + address(r)
    if x < 0.65:
        return w(f"find a {r.choice(BUSINESSES)} near {r.choice(CITIES)}")
    return w(f"{r.choice(NAMES)} lives at") + address(r) + ["in", r.choice(CITIES)]


def _media(r):
    x = r.random()
    if x < 0.4:
        return w(f"play some {r.choice(GENRES)} music in the") + room(r)
    if x < 0.7:
        return w("turn the volume to") + cardinal(r.randint(1, 11))
    return w("skip ahead") + cardinal(r.randint(5, 120)) + ["seconds"]


def _statements(r):
    x = r.random()
    if x < 0.35:
        return w(f"{r.choice(NAMES)} will arrive in {r.choice(CITIES)}") + day(r) + ["at"] + clock(r)
    if x < 0.6:
        return w("the meeting in room") + cardinal(r.randint(100, 999)) + w("starts at") + clock(r)
    if x < 0.8:
        return w("there are") + cardinal(r.randint(2, 60)) + [r.choice(COLORS), r.choice(NOUNS), "in", "the"] + room(r)
    return w("how many") + [r.choice(NOUNS)] + w("are in the") + room(r)


TEMPLATES: Sequence[Callable[[random.Random], List[str]]] = (
    _home, _call, _calendar, _travel, _numbers, _spell, _places, _media, _statements)

_VALID = re.compile(r"^[a-z']+$")


def sentence(r: random.Random) -> List[str]:
    """One sentence as tokens ("_x" is the spelled letter x)."""
    return r.choice(TEMPLATES)(r)


def transcript(tokens: Sequence[str]) -> str:
    """The reference text: uppercase words (LibriSpeech style), letters as single letters."""
    words = [t.lstrip("_") for t in tokens]
    for t in words:
        if not _VALID.match(t):
            raise ValueError(f"grammar produced a bad word {t!r} in {' '.join(tokens)!r}")
    return " ".join(words).upper()


def speakable(tokens: Sequence[str]) -> str:
    """The text given to espeak-ng: the letter "a" as the letter name, not the article."""
    return " ".join("[[eI]]" if t == "_a" else t.lstrip("_") for t in tokens)


def vocabulary(n_samples: int = 20000, seed: int = 0) -> Set[str]:
    """The words the grammar produces, estimated by sampling (a lower bound)."""
    r = random.Random(seed)
    return {wd for _ in range(n_samples) for wd in transcript(sentence(r)).split()}
