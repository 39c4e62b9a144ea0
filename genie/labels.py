"""The label sets of the five published tasks (REFERENCE section 1), as data their tasks,
builders and demos share. A new task may keep its labels in its own module."""

from __future__ import annotations

# Twitter-2015 and GMNER use OTHER, Twitter-2017 uses MISC for the fourth type.
NER_TYPES = ("PER", "LOC", "ORG", "OTHER", "MISC")
NER_WORDS = {"PER": "person", "LOC": "location", "ORG": "organization", "OTHER": "other",
             "MISC": "miscellaneous"}

# Twitter-FMNERG: 8 coarse types, 51 fine types.
FMNERG_TYPES: dict[str, tuple[str, ...]] = {
    "location": ("city", "country", "state", "continent", "location_other", "park", "road"),
    "building": ("building_other", "cultural_place", "entertainment_place", "sports_facility"),
    "organization": ("company", "educational_institution", "band", "government_agency", "news_agency",
                     "organization_other", "political_party", "social_organization", "sports_league",
                     "sports_team"),
    "person": ("politician", "musician", "actor", "artist", "athlete", "author", "businessman", "character",
               "coach", "director", "intellectual", "journalist", "person_other"),
    "other": ("animal", "award", "medical_thing", "website", "ordinance"),
    "art": ("art_other", "film_and_television_works", "magazine", "music", "written_work"),
    "event": ("event_other", "festival", "sports_event"),
    "product": ("brand_name_products", "game", "product_other", "software"),
}
FINE_TO_COARSE = {fine: coarse for coarse, fines in FMNERG_TYPES.items() for fine in fines}

# MNRE: the relation path names the head and tail types, `/per/org/member_of`. `alumi` is
# spelled so in the data. JMERE uses the last part as the relation and the types as entity tags.
NO_RELATION = "None"
UNTYPED = "unknown"  # the type of an entity in a None pair: MNRE has no type fields
MNRE_RELATIONS = (
    "/loc/loc/contain", "/misc/loc/held_on", "/misc/misc/part_of", "/org/loc/locate_at",
    "/org/org/alternate_names", "/org/org/subsidiary", "/per/loc/place_of_birth",
    "/per/loc/place_of_residence", "/per/misc/awarded", "/per/misc/nationality", "/per/misc/present_in",
    "/per/misc/race", "/per/misc/religion", "/per/org/member_of", "/per/per/alternate_names",
    "/per/per/alumi", "/per/per/charges", "/per/per/couple", "/per/per/neighbor", "/per/per/parent",
    "/per/per/peer", "/per/per/siblings",
)
MNRE_LABELS = (*MNRE_RELATIONS, NO_RELATION)
RELATION_TYPES = ("per", "org", "loc", "misc")
RELATION_TYPE_WORDS = {"per": "person", "org": "organization", "loc": "location", "misc": "miscellaneous"}
JMERE_RELATIONS = tuple(dict.fromkeys(path.rsplit("/", 1)[1] for path in MNRE_RELATIONS))


def split_path(label: str) -> tuple[str, str, str]:
    """`/per/org/member_of` -> ("per", "org", "member_of"); ValueError for anything else."""
    parts = label.split("/")
    if len(parts) != 4 or parts[0] or not all(parts[1:]):
        raise ValueError(f"relation {label!r} is not of the form /head_type/tail_type/relation")
    return parts[1], parts[2], parts[3]
