"""Lookup tables for the standardize functions: reviewable data, not logic.

Every table here is plain Python data. :mod:`udp_spark.standardize.functions` turns them into
Spark literals (maps, arrays, regex alternations); the few helpers at the bottom only derive
keyed dictionaries from the tables, in pure Python, so they can be reviewed and unit-tested
without Spark.

Keys of the ``*_BY_KEY`` lookups are *lookup keys*: lower-cased, accent-folded, dots and
apostrophes removed, any other run of non-letters/digits turned into one space, a leading
"the " dropped (see :func:`lookup_key`); the Spark side builds the same key with built-ins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------

#: Values that mean "no value" in free-text source fields (compared lower-cased, after trim).
PLACEHOLDER_TOKENS: tuple[str, ...] = (
    "", "null", "none", "n/a", "na", "-", "--", "?", "unknown", ".", "nan",
)

#: Single letters folded to ASCII by ``F.translate``: target letter -> lower-case source letters
#: (Latin-1 Supplement, Latin Extended-A, plus the Romanian comma-below and pinyin letters).
ACCENT_FOLD: Mapping[str, str] = MappingProxyType({
    "a": "àáâãäåāăąǎ",
    "c": "çćĉċč",
    "d": "ďđð",
    "e": "èéêëēĕėęě",
    "g": "ĝğġģ",
    "h": "ĥħ",
    "i": "ìíîïĩīĭįıǐ",
    "j": "ĵ",
    "k": "ķĸ",
    "l": "ĺļľŀł",
    "n": "ñńņňŉŋ",
    "o": "òóôõöøōŏőǒơ",
    "r": "ŕŗř",
    "s": "śŝşšſș",
    "t": "ţťŧț",
    "u": "ùúûüũūŭůűųǔǖǘǚǜư",
    "w": "ŵ",
    "y": "ýÿŷ",
    "z": "źżž",
})

#: Letters folded to more than one ASCII letter (applied before :data:`ACCENT_FOLD`).
ACCENT_FOLD_MULTI: Mapping[str, str] = MappingProxyType({
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "þ": "th",
    "ĳ": "ij",
})

#: Apostrophe-like characters: removed inside words (o'brien -> obrien).
APOSTROPHES: str = "'\u2019\u2018`\u00b4\u02bc"

# --------------------------------------------------------------------------------------------
# Person names
# --------------------------------------------------------------------------------------------

#: Honorifics dropped from names (lower-case, without the trailing dot).
NAME_TITLES: tuple[str, ...] = (
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "rev",
    "herr", "frau", "mme", "mlle", "sra", "srta",
)

#: Generational and degree suffixes dropped from names. 'sr' is also Spanish "señor".
NAME_SUFFIXES: tuple[str, ...] = (
    "jr", "jnr", "sr", "snr", "ii", "iii", "iv", "phd", "md", "esq",
)

#: Suffixes shown in upper case by ``display_name`` (John Smith III, not John Smith Iii).
ROMAN_NUMERAL_SUFFIXES: tuple[str, ...] = ("ii", "iii", "iv", "vi", "vii", "viii")

#: Lower-case family-name particles: 'Ludwig van Beethoven' -> family 'van Beethoven'.
NAME_PARTICLES: tuple[str, ...] = (
    "van", "von", "der", "den", "de", "del", "della", "degli", "da", "di", "du", "la", "le",
    "dos", "das", "ten", "ter", "bin", "ibn", "zu",
)

# --------------------------------------------------------------------------------------------
# Gender
# --------------------------------------------------------------------------------------------

#: Lookup key -> 'M' | 'F' | 'X'. Titles count as evidence (Mr -> M, Mrs/Ms/Miss -> F).
GENDER_BY_KEY: Mapping[str, str] = MappingProxyType({
    **dict.fromkeys(
        ("m", "male", "man", "men", "boy", "mr", "masculine", "masculin", "masculino",
         "maschio", "hombre", "homme", "h", "mannlich", "herr", "mister", "sr", "senor"),
        "M",
    ),
    **dict.fromkeys(
        ("f", "female", "woman", "women", "girl", "ms", "mrs", "miss", "feminine", "feminin",
         "femenino", "feminino", "femmina", "mujer", "femme", "w", "weiblich", "frau", "mme",
         "madame", "mlle", "mademoiselle", "sra", "srta", "senora", "senorita"),
        "F",
    ),
    **dict.fromkeys(
        ("x", "d", "diverse", "divers", "non binary", "nonbinary", "nb", "enby", "other",
         "genderqueer", "gender fluid", "genderfluid", "intersex", "agender"),
        "X",
    ),
})

# --------------------------------------------------------------------------------------------
# E-mail
# --------------------------------------------------------------------------------------------

#: Domains where dots in the local part are ignored; all are folded to the first one.
GMAIL_DOMAINS: tuple[str, ...] = ("gmail.com", "googlemail.com")

#: Domains of forwarding (masked) addresses: a relay made for one app or shop that forwards
#: to the person's own mailbox (Apple's Hide My Email, Firefox Relay, DuckDuckGo's e-mail
#: protection, Amazon's marketplace buyer addresses). Deliverable, but not the person's
#: address: survivorship ranks them after one that is.
RELAY_EMAIL_DOMAINS: tuple[str, ...] = (
    "privaterelay.appleid.com", "mozmail.com", "duck.com", "marketplace.amazon.com",
    "marketplace.amazon.co.uk", "marketplace.amazon.de", "marketplace.amazon.fr",
    "marketplace.amazon.es", "marketplace.amazon.it")

# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------

#: Whole-word street tokens (after folding and punctuation removal) -> canonical short form.
#: 'str' is the German abbreviation (Hauptstr.) and stays 'str'; English 'street'/'st' -> 'st'.
STREET_TYPES: Mapping[str, str] = MappingProxyType({
    "street": "st", "st": "st",
    "strasse": "str", "str": "str",
    "avenue": "ave", "av": "ave", "ave": "ave", "avn": "ave",
    "road": "rd", "rd": "rd",
    "boulevard": "blvd", "blvd": "blvd", "boul": "blvd", "bd": "blvd", "bvd": "blvd",
    "drive": "dr", "dr": "dr", "drv": "dr",
    "lane": "ln", "ln": "ln",
    "place": "pl", "pl": "pl", "platz": "pl",
    "court": "ct", "ct": "ct",
    "square": "sq", "sq": "sq",
    "terrace": "ter", "ter": "ter", "terr": "ter",
    "highway": "hwy", "hwy": "hwy",
    "parkway": "pkwy", "pkwy": "pkwy",
    "circle": "cir", "cir": "cir",
    "crescent": "cres", "cres": "cres",
    # Spanish (Correos) and French (La Poste) abbreviations: 'Cl. Mayor', 'Pza. Mayor',
    # 'R. de la Paix', 'ch. des Vignes', 'imp. Rameau'
    "calle": "calle", "cl": "calle", "cll": "calle",
    "avenida": "avda", "avda": "avda", "avd": "avda",
    "plaza": "pl", "pza": "pl",
    "rue": "rue", "r": "rue",
    "chemin": "ch", "ch": "ch",
    "impasse": "imp", "imp": "imp",
    "apartment": "apt", "apt": "apt", "appt": "apt",
    "north": "n", "south": "s", "east": "e", "west": "w",
    "northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw",
})

#: Countries whose postcodes have five digits (so a four-digit one lost its leading zero to
#: a spreadsheet), each with the letter its postcodes were written after until the 1990s
#: ('D-22752', 'F-75001').
POSTCODE_PREFIXES: Mapping[str, str] = MappingProxyType({
    "DE": "D", "FR": "F", "ES": "E", "IT": "I",
})

#: Street types also written glued to the name (German): 'hauptstrasse' -> 'haupt str'.
STREET_COMPOUND_SUFFIXES: Mapping[str, str] = MappingProxyType({
    "strasse": "str", "str": "str", "platz": "pl",
})

# --------------------------------------------------------------------------------------------
# Countries
# --------------------------------------------------------------------------------------------

#: ISO 3166-1: (alpha-2, alpha-3, names in English, German, French, Spanish, Italian,
#: Portuguese, Dutch). Generated once from the JDK's CLDR locale data (duplicates removed);
#: regenerate rather than hand-edit. Hand-picked extra names are in COUNTRY_ALIASES.
COUNTRIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("AD", "AND", ("Andorra", "Andorre")),
    ("AE", "ARE", (
        "United Arab Emirates", "Vereinigte Arabische Emirate", "Émirats arabes unis",
        "Emiratos Árabes Unidos", "Emirati Arabi Uniti", "Emirados Árabes Unidos",
        "Verenigde Arabische Emiraten",
    )),
    ("AF", "AFG", ("Afghanistan", "Afganistán", "Afeganistão")),
    ("AG", "ATG", (
        "Antigua & Barbuda", "Antigua und Barbuda", "Antigua-et-Barbuda", "Antigua y Barbuda",
        "Antigua e Barbuda", "Antígua e Barbuda", "Antigua en Barbuda",
    )),
    ("AI", "AIA", ("Anguilla", "Anguila")),
    ("AL", "ALB", ("Albania", "Albanien", "Albanie", "Albânia", "Albanië")),
    ("AM", "ARM", ("Armenia", "Armenien", "Arménie", "Armênia", "Armenië")),
    ("AO", "AGO", ("Angola",)),
    ("AQ", "ATA", ("Antarctica", "Antarktis", "Antarctique", "Antártida", "Antartide")),
    ("AR", "ARG", ("Argentina", "Argentinien", "Argentine", "Argentinië")),
    ("AS", "ASM", (
        "American Samoa", "Amerikanisch-Samoa", "Samoa américaines", "Samoa Americana",
        "Samoa americane", "Amerikaans-Samoa",
    )),
    ("AT", "AUT", ("Austria", "Österreich", "Autriche", "Áustria", "Oostenrijk")),
    ("AU", "AUS", ("Australia", "Australien", "Australie", "Austrália", "Australië")),
    ("AW", "ABW", ("Aruba",)),
    ("AX", "ALA", (
        "Åland Islands", "Ålandinseln", "Îles Åland", "Islas Aland", "Isole Åland", "Ilhas Aland",
        "Åland",
    )),
    ("AZ", "AZE", (
        "Azerbaijan", "Aserbaidschan", "Azerbaïdjan", "Azerbaiyán", "Azerbaigian", "Azerbaijão",
        "Azerbeidzjan",
    )),
    ("BA", "BIH", (
        "Bosnia & Herzegovina", "Bosnien und Herzegowina", "Bosnie-Herzégovine",
        "Bosnia y Herzegovina", "Bosnia ed Erzegovina", "Bósnia e Herzegovina",
        "Bosnië en Herzegovina",
    )),
    ("BB", "BRB", ("Barbados", "Barbade")),
    ("BD", "BGD", ("Bangladesh", "Bangladesch", "Bangladés")),
    ("BE", "BEL", ("Belgium", "Belgien", "Belgique", "Bélgica", "Belgio", "België")),
    ("BF", "BFA", ("Burkina Faso", "Burquina Faso")),
    ("BG", "BGR", ("Bulgaria", "Bulgarien", "Bulgarie", "Bulgária", "Bulgarije")),
    ("BH", "BHR", ("Bahrain", "Bahreïn", "Baréin", "Bahrein", "Barein")),
    ("BI", "BDI", ("Burundi",)),
    ("BJ", "BEN", ("Benin", "Bénin", "Benín")),
    ("BL", "BLM", ("St. Barthélemy", "Saint-Barthélemy", "San Bartolomé", "São Bartolomeu")),
    ("BM", "BMU", ("Bermuda", "Bermudes", "Bermudas")),
    ("BN", "BRN", ("Brunei", "Brunei Darussalam", "Brunéi")),
    ("BO", "BOL", ("Bolivia", "Bolivien", "Bolivie", "Bolívia")),
    ("BQ", "BES", (
        "Caribbean Netherlands", "Karibische Niederlande", "Pays-Bas caribéens",
        "Caribe neerlandés", "Caraibi olandesi", "Países Baixos Caribenhos", "Caribisch Nederland",
    )),
    ("BR", "BRA", ("Brazil", "Brasilien", "Brésil", "Brasil", "Brasile", "Brazilië")),
    ("BS", "BHS", ("Bahamas", "Bahama\u2019s")),
    ("BT", "BTN", ("Bhutan", "Bhoutan", "Bután", "Butão")),
    ("BV", "BVT", (
        "Bouvet Island", "Bouvetinsel", "Île Bouvet", "Isla Bouvet", "Isola Bouvet", "Ilha Bouvet",
        "Bouveteiland",
    )),
    ("BW", "BWA", ("Botswana", "Botsuana")),
    ("BY", "BLR", ("Belarus", "Biélorussie", "Bielorrusia", "Bielorussia", "Bielorrússia")),
    ("BZ", "BLZ", ("Belize", "Belice")),
    ("CA", "CAN", ("Canada", "Kanada", "Canadá")),
    ("CC", "CCK", (
        "Cocos (Keeling) Islands", "Kokosinseln", "Îles Cocos", "Islas Cocos",
        "Isole Cocos (Keeling)", "Ilhas Cocos (Keeling)", "Cocoseilanden",
    )),
    ("CD", "COD", (
        "Congo - Kinshasa", "Kongo-Kinshasa", "Congo-Kinshasa", "República Democrática del Congo",
    )),
    ("CF", "CAF", (
        "Central African Republic", "Zentralafrikanische Republik", "République centrafricaine",
        "República Centroafricana", "Repubblica Centrafricana", "República Centro-Africana",
        "Centraal-Afrikaanse Republiek",
    )),
    ("CG", "COG", (
        "Congo - Brazzaville", "Kongo-Brazzaville", "Congo-Brazzaville", "Congo",
        "República do Congo",
    )),
    ("CH", "CHE", (
        "Switzerland", "Schweiz", "Suisse", "Suiza", "Svizzera", "Suíça", "Zwitserland",
    )),
    ("CI", "CIV", ("Côte d\u2019Ivoire", "Costa d\u2019Avorio", "Costa do Marfim", "Ivoorkust")),
    ("CK", "COK", (
        "Cook Islands", "Cookinseln", "Îles Cook", "Islas Cook", "Isole Cook", "Ilhas Cook",
        "Cookeilanden",
    )),
    ("CL", "CHL", ("Chile", "Chili", "Cile")),
    ("CM", "CMR", (
        "Cameroon", "Kamerun", "Cameroun", "Camerún", "Camerun", "Camarões", "Kameroen",
    )),
    ("CN", "CHN", ("China", "Chine", "Cina")),
    ("CO", "COL", ("Colombia", "Kolumbien", "Colombie", "Colômbia")),
    ("CR", "CRI", ("Costa Rica",)),
    ("CU", "CUB", ("Cuba", "Kuba")),
    ("CV", "CPV", ("Cape Verde", "Cabo Verde", "Cap-Vert", "Capo Verde", "Kaapverdië")),
    ("CW", "CUW", ("Curaçao", "Curazao")),
    ("CX", "CXR", (
        "Christmas Island", "Weihnachtsinsel", "Île Christmas", "Isla de Navidad",
        "Isola Christmas", "Ilha Christmas", "Christmaseiland",
    )),
    ("CY", "CYP", ("Cyprus", "Zypern", "Chypre", "Chipre", "Cipro")),
    ("CZ", "CZE", (
        "Czechia", "Tschechien", "Tchéquie", "Chequia", "Cechia", "Tchéquia", "Tsjechië",
    )),
    ("DE", "DEU", (
        "Germany", "Deutschland", "Allemagne", "Alemania", "Germania", "Alemanha", "Duitsland",
    )),
    ("DJ", "DJI", ("Djibouti", "Dschibuti", "Yibuti", "Gibuti", "Djibuti")),
    ("DK", "DNK", ("Denmark", "Dänemark", "Danemark", "Dinamarca", "Danimarca", "Denemarken")),
    ("DM", "DMA", ("Dominica", "Dominique")),
    ("DO", "DOM", (
        "Dominican Republic", "Dominikanische Republik", "République dominicaine",
        "República Dominicana", "Repubblica Dominicana", "Dominicaanse Republiek",
    )),
    ("DZ", "DZA", ("Algeria", "Algerien", "Algérie", "Argelia", "Argélia", "Algerije")),
    ("EC", "ECU", ("Ecuador", "Équateur", "Equador")),
    ("EE", "EST", ("Estonia", "Estland", "Estonie", "Estônia")),
    ("EG", "EGY", ("Egypt", "Ägypten", "Égypte", "Egipto", "Egitto", "Egito", "Egypte")),
    ("EH", "ESH", (
        "Western Sahara", "Westsahara", "Sahara occidental", "Sáhara Occidental",
        "Sahara occidentale", "Saara Ocidental", "Westelijke Sahara",
    )),
    ("ER", "ERI", ("Eritrea", "Érythrée", "Eritreia")),
    ("ES", "ESP", ("Spain", "Spanien", "Espagne", "España", "Spagna", "Espanha", "Spanje")),
    ("ET", "ETH", (
        "Ethiopia", "Äthiopien", "Éthiopie", "Etiopía", "Etiopia", "Etiópia", "Ethiopië",
    )),
    ("FI", "FIN", ("Finland", "Finnland", "Finlande", "Finlandia", "Finlândia")),
    ("FJ", "FJI", ("Fiji", "Fidschi", "Fidji", "Fiyi", "Figi")),
    ("FK", "FLK", (
        "Falkland Islands", "Falklandinseln", "Îles Malouines", "Islas Malvinas", "Isole Falkland",
        "Ilhas Malvinas", "Falklandeilanden",
    )),
    ("FM", "FSM", ("Micronesia", "Mikronesien", "Micronésie", "Micronésia")),
    ("FO", "FRO", (
        "Faroe Islands", "Färöer", "Îles Féroé", "Islas Feroe", "Isole Fær Øer", "Ilhas Faroé",
        "Faeröer",
    )),
    ("FR", "FRA", ("France", "Frankreich", "Francia", "França", "Frankrijk")),
    ("GA", "GAB", ("Gabon", "Gabun", "Gabón", "Gabão")),
    ("GB", "GBR", (
        "United Kingdom", "Vereinigtes Königreich", "Royaume-Uni", "Reino Unido", "Regno Unito",
        "Verenigd Koninkrijk",
    )),
    ("GD", "GRD", ("Grenada", "Grenade", "Granada")),
    ("GE", "GEO", ("Georgia", "Georgien", "Géorgie", "Geórgia", "Georgië")),
    ("GF", "GUF", (
        "French Guiana", "Französisch-Guayana", "Guyane française", "Guayana Francesa",
        "Guyana francese", "Guiana Francesa", "Frans-Guyana",
    )),
    ("GG", "GGY", ("Guernsey", "Guernesey")),
    ("GH", "GHA", ("Ghana", "Gana")),
    ("GI", "GIB", ("Gibraltar", "Gibilterra")),
    ("GL", "GRL", ("Greenland", "Grönland", "Groenland", "Groenlandia", "Groenlândia")),
    ("GM", "GMB", ("Gambia", "Gambie", "Gâmbia")),
    ("GN", "GIN", ("Guinea", "Guinée", "Guiné", "Guinee")),
    ("GP", "GLP", ("Guadeloupe", "Guadalupe", "Guadalupa")),
    ("GQ", "GNQ", (
        "Equatorial Guinea", "Äquatorialguinea", "Guinée équatoriale", "Guinea Ecuatorial",
        "Guinea Equatoriale", "Guiné Equatorial", "Equatoriaal-Guinea",
    )),
    ("GR", "GRC", ("Greece", "Griechenland", "Grèce", "Grecia", "Grécia", "Griekenland")),
    ("GS", "SGS", (
        "South Georgia & South Sandwich Islands", "Südgeorgien und die Südlichen Sandwichinseln",
        "Géorgie du Sud-et-les Îles Sandwich du Sud", "Islas Georgia del Sur y Sandwich del Sur",
        "Georgia del Sud e Sandwich australi", "Ilhas Geórgia do Sul e Sandwich do Sul",
        "Zuid-Georgia en Zuidelijke Sandwicheilanden",
    )),
    ("GT", "GTM", ("Guatemala",)),
    ("GU", "GUM", ("Guam",)),
    ("GW", "GNB", (
        "Guinea-Bissau", "Guinée-Bissau", "Guinea-Bisáu", "Guiné-Bissau", "Guinee-Bissau",
    )),
    ("GY", "GUY", ("Guyana", "Guiana")),
    ("HK", "HKG", (
        "Hong Kong SAR China", "Sonderverwaltungsregion Hongkong", "R.A.S. chinoise de Hong Kong",
        "RAE de Hong Kong (China)", "RAS di Hong Kong", "Hong Kong, RAE da China",
        "Hongkong SAR van China",
    )),
    ("HM", "HMD", (
        "Heard & McDonald Islands", "Heard und McDonaldinseln", "Îles Heard-et-MacDonald",
        "Islas Heard y McDonald", "Isole Heard e McDonald", "Ilhas Heard e McDonald",
        "Heard en McDonaldeilanden",
    )),
    ("HN", "HND", ("Honduras",)),
    ("HR", "HRV", ("Croatia", "Kroatien", "Croatie", "Croacia", "Croazia", "Croácia", "Kroatië")),
    ("HT", "HTI", ("Haiti", "Haïti", "Haití")),
    ("HU", "HUN", ("Hungary", "Ungarn", "Hongrie", "Hungría", "Ungheria", "Hungria", "Hongarije")),
    ("ID", "IDN", ("Indonesia", "Indonesien", "Indonésie", "Indonésia", "Indonesië")),
    ("IE", "IRL", ("Ireland", "Irland", "Irlande", "Irlanda", "Ierland")),
    ("IL", "ISR", ("Israel", "Israël", "Israele")),
    ("IM", "IMN", ("Isle of Man", "Île de Man", "Isla de Man", "Isola di Man", "Ilha de Man")),
    ("IN", "IND", ("India", "Indien", "Inde", "Índia")),
    ("IO", "IOT", (
        "British Indian Ocean Territory", "Britisches Territorium im Indischen Ozean",
        "Territoire britannique de l\u2019océan Indien", "Territorio Británico del Océano Índico",
        "Territorio britannico dell\u2019Oceano Indiano", "Território Britânico do Oceano Índico",
        "Brits Indische Oceaanterritorium",
    )),
    ("IQ", "IRQ", ("Iraq", "Irak", "Iraque")),
    ("IR", "IRN", ("Iran", "Irán", "Irã")),
    ("IS", "ISL", ("Iceland", "Island", "Islande", "Islandia", "Islanda", "Islândia", "IJsland")),
    ("IT", "ITA", ("Italy", "Italien", "Italie", "Italia", "Itália", "Italië")),
    ("JE", "JEY", ("Jersey",)),
    ("JM", "JAM", ("Jamaica", "Jamaika", "Jamaïque", "Giamaica")),
    ("JO", "JOR", (
        "Jordan", "Jordanien", "Jordanie", "Jordania", "Giordania", "Jordânia", "Jordanië",
    )),
    ("JP", "JPN", ("Japan", "Japon", "Japón", "Giappone", "Japão")),
    ("KE", "KEN", ("Kenya", "Kenia", "Quênia")),
    ("KG", "KGZ", (
        "Kyrgyzstan", "Kirgisistan", "Kirghizstan", "Kirguistán", "Kirghizistan", "Quirguistão",
        "Kirgizië",
    )),
    ("KH", "KHM", (
        "Cambodia", "Kambodscha", "Cambodge", "Camboya", "Cambogia", "Camboja", "Cambodja",
    )),
    ("KI", "KIR", ("Kiribati", "Quiribati")),
    ("KM", "COM", ("Comoros", "Komoren", "Comores", "Comoras", "Comore", "Comoren")),
    ("KN", "KNA", (
        "St. Kitts & Nevis", "St. Kitts und Nevis", "Saint-Christophe-et-Niévès",
        "San Cristóbal y Nieves", "Saint Kitts e Nevis", "São Cristóvão e Névis",
        "Saint Kitts en Nevis",
    )),
    ("KP", "PRK", (
        "North Korea", "Nordkorea", "Corée du Nord", "Corea del Norte", "Corea del Nord",
        "Coreia do Norte", "Noord-Korea",
    )),
    ("KR", "KOR", (
        "South Korea", "Südkorea", "Corée du Sud", "Corea del Sur", "Corea del Sud",
        "Coreia do Sul", "Zuid-Korea",
    )),
    ("KW", "KWT", ("Kuwait", "Koweït", "Koeweit")),
    ("KY", "CYM", (
        "Cayman Islands", "Kaimaninseln", "Îles Caïmans", "Islas Caimán", "Isole Cayman",
        "Ilhas Cayman", "Kaaimaneilanden",
    )),
    ("KZ", "KAZ", (
        "Kazakhstan", "Kasachstan", "Kazajistán", "Kazakistan", "Cazaquistão", "Kazachstan",
    )),
    ("LA", "LAO", ("Laos",)),
    ("LB", "LBN", ("Lebanon", "Libanon", "Liban", "Líbano", "Libano")),
    ("LC", "LCA", ("St. Lucia", "Sainte-Lucie", "Santa Lucía", "Saint Lucia", "Santa Lúcia")),
    ("LI", "LIE", ("Liechtenstein",)),
    ("LK", "LKA", ("Sri Lanka",)),
    ("LR", "LBR", ("Liberia", "Libéria")),
    ("LS", "LSO", ("Lesotho", "Lesoto")),
    ("LT", "LTU", ("Lithuania", "Litauen", "Lituanie", "Lituania", "Lituânia", "Litouwen")),
    ("LU", "LUX", ("Luxembourg", "Luxemburg", "Luxemburgo", "Lussemburgo")),
    ("LV", "LVA", ("Latvia", "Lettland", "Lettonie", "Letonia", "Lettonia", "Letônia", "Letland")),
    ("LY", "LBY", ("Libya", "Libyen", "Libye", "Libia", "Líbia", "Libië")),
    ("MA", "MAR", ("Morocco", "Marokko", "Maroc", "Marruecos", "Marocco", "Marrocos")),
    ("MC", "MCO", ("Monaco", "Mónaco", "Mônaco")),
    ("MD", "MDA", ("Moldova", "Republik Moldau", "Moldavie", "Moldavia", "Moldávia", "Moldavië")),
    ("ME", "MNE", ("Montenegro", "Monténégro")),
    ("MF", "MAF", ("St. Martin", "Saint-Martin", "San Martín", "Saint Martin", "São Martinho")),
    ("MG", "MDG", ("Madagascar", "Madagaskar")),
    ("MH", "MHL", (
        "Marshall Islands", "Marshallinseln", "Îles Marshall", "Islas Marshall", "Isole Marshall",
        "Ilhas Marshall", "Marshalleilanden",
    )),
    ("MK", "MKD", (
        "North Macedonia", "Nordmazedonien", "Macédoine du Nord", "Macedonia del Norte",
        "Macedonia del Nord", "Macedônia do Norte", "Noord-Macedonië",
    )),
    ("ML", "MLI", ("Mali",)),
    ("MM", "MMR", (
        "Myanmar (Burma)", "Myanmar", "Myanmar (Birmanie)", "Myanmar (Birmania)",
        "Mianmar (Birmânia)", "Myanmar (Birma)",
    )),
    ("MN", "MNG", ("Mongolia", "Mongolei", "Mongolie", "Mongólia", "Mongolië")),
    ("MO", "MAC", (
        "Macao SAR China", "Sonderverwaltungsregion Macau", "R.A.S. chinoise de Macao",
        "RAE de Macao (China)", "RAS di Macao", "Macau, RAE da China", "Macau SAR van China",
    )),
    ("MP", "MNP", (
        "Northern Mariana Islands", "Nördliche Marianen", "Îles Mariannes du Nord",
        "Islas Marianas del Norte", "Isole Marianne settentrionali", "Ilhas Marianas do Norte",
        "Noordelijke Marianen",
    )),
    ("MQ", "MTQ", ("Martinique", "Martinica")),
    ("MR", "MRT", ("Mauritania", "Mauretanien", "Mauritanie", "Mauritânia", "Mauritanië")),
    ("MS", "MSR", ("Montserrat",)),
    ("MT", "MLT", ("Malta", "Malte")),
    ("MU", "MUS", ("Mauritius", "Maurice", "Mauricio", "Maurício")),
    ("MV", "MDV", ("Maldives", "Malediven", "Maldivas", "Maldive", "Maldiven")),
    ("MW", "MWI", ("Malawi", "Malaui")),
    ("MX", "MEX", ("Mexico", "Mexiko", "Mexique", "México", "Messico")),
    ("MY", "MYS", ("Malaysia", "Malaisie", "Malasia", "Malásia", "Maleisië")),
    ("MZ", "MOZ", ("Mozambique", "Mosambik", "Mozambico", "Moçambique")),
    ("NA", "NAM", ("Namibia", "Namibie", "Namíbia", "Namibië")),
    ("NC", "NCL", (
        "New Caledonia", "Neukaledonien", "Nouvelle-Calédonie", "Nueva Caledonia",
        "Nuova Caledonia", "Nova Caledônia", "Nieuw-Caledonië",
    )),
    ("NE", "NER", ("Niger", "Níger")),
    ("NF", "NFK", (
        "Norfolk Island", "Norfolkinsel", "Île Norfolk", "Isla Norfolk", "Isola Norfolk",
        "Ilha Norfolk", "Norfolk",
    )),
    ("NG", "NGA", ("Nigeria", "Nigéria")),
    ("NI", "NIC", ("Nicaragua", "Nicarágua")),
    ("NL", "NLD", (
        "Netherlands", "Niederlande", "Pays-Bas", "Países Bajos", "Paesi Bassi", "Países Baixos",
        "Nederland",
    )),
    ("NO", "NOR", ("Norway", "Norwegen", "Norvège", "Noruega", "Norvegia", "Noorwegen")),
    ("NP", "NPL", ("Nepal", "Népal")),
    ("NR", "NRU", ("Nauru",)),
    ("NU", "NIU", ("Niue",)),
    ("NZ", "NZL", (
        "New Zealand", "Neuseeland", "Nouvelle-Zélande", "Nueva Zelanda", "Nuova Zelanda",
        "Nova Zelândia", "Nieuw-Zeeland",
    )),
    ("OM", "OMN", ("Oman", "Omán", "Omã")),
    ("PA", "PAN", ("Panama", "Panamá")),
    ("PE", "PER", ("Peru", "Pérou", "Perú", "Perù")),
    ("PF", "PYF", (
        "French Polynesia", "Französisch-Polynesien", "Polynésie française", "Polinesia Francesa",
        "Polinesia francese", "Polinésia Francesa", "Frans-Polynesië",
    )),
    ("PG", "PNG", (
        "Papua New Guinea", "Papua-Neuguinea", "Papouasie-Nouvelle-Guinée", "Papúa Nueva Guinea",
        "Papua Nuova Guinea", "Papua-Nova Guiné", "Papoea-Nieuw-Guinea",
    )),
    ("PH", "PHL", ("Philippines", "Philippinen", "Filipinas", "Filippine", "Filipijnen")),
    ("PK", "PAK", ("Pakistan", "Pakistán", "Paquistão")),
    ("PL", "POL", ("Poland", "Polen", "Pologne", "Polonia", "Polônia")),
    ("PM", "SPM", (
        "St. Pierre & Miquelon", "St. Pierre und Miquelon", "Saint-Pierre-et-Miquelon",
        "San Pedro y Miquelón", "Saint-Pierre e Miquelon", "São Pedro e Miquelão",
        "Saint-Pierre en Miquelon",
    )),
    ("PN", "PCN", (
        "Pitcairn Islands", "Pitcairninseln", "Îles Pitcairn", "Islas Pitcairn", "Isole Pitcairn",
        "Ilhas Pitcairn", "Pitcairneilanden",
    )),
    ("PR", "PRI", ("Puerto Rico", "Porto Rico", "Portorico")),
    ("PS", "PSE", (
        "Palestinian Territories", "Palästinensische Autonomiegebiete", "Territoires palestiniens",
        "Territorios Palestinos", "Territori palestinesi", "Territórios palestinos",
        "Palestijnse gebieden",
    )),
    ("PT", "PRT", ("Portugal", "Portogallo")),
    ("PW", "PLW", ("Palau", "Palaos")),
    ("PY", "PRY", ("Paraguay", "Paraguai")),
    ("QA", "QAT", ("Qatar", "Katar", "Catar")),
    ("RE", "REU", ("Réunion", "La Réunion", "Reunión", "Riunione", "Reunião")),
    ("RO", "ROU", ("Romania", "Rumänien", "Roumanie", "Rumanía", "Romênia", "Roemenië")),
    ("RS", "SRB", ("Serbia", "Serbien", "Serbie", "Sérvia", "Servië")),
    ("RU", "RUS", ("Russia", "Russland", "Russie", "Rusia", "Rússia", "Rusland")),
    ("RW", "RWA", ("Rwanda", "Ruanda")),
    ("SA", "SAU", (
        "Saudi Arabia", "Saudi-Arabien", "Arabie saoudite", "Arabia Saudí", "Arabia Saudita",
        "Arábia Saudita", "Saoedi-Arabië",
    )),
    ("SB", "SLB", (
        "Solomon Islands", "Salomonen", "Îles Salomon", "Islas Salomón", "Isole Salomone",
        "Ilhas Salomão", "Salomonseilanden",
    )),
    ("SC", "SYC", ("Seychelles", "Seychellen", "Seicheles")),
    ("SD", "SDN", ("Sudan", "Soudan", "Sudán", "Sudão", "Soedan")),
    ("SE", "SWE", ("Sweden", "Schweden", "Suède", "Suecia", "Svezia", "Suécia", "Zweden")),
    ("SG", "SGP", ("Singapore", "Singapur", "Singapour", "Singapura")),
    ("SH", "SHN", (
        "St. Helena", "Sainte-Hélène", "Santa Elena", "Sant\u2019Elena", "Santa Helena",
        "Sint-Helena",
    )),
    ("SI", "SVN", ("Slovenia", "Slowenien", "Slovénie", "Eslovenia", "Eslovênia", "Slovenië")),
    ("SJ", "SJM", (
        "Svalbard & Jan Mayen", "Spitzbergen und Jan Mayen", "Svalbard et Jan Mayen",
        "Svalbard y Jan Mayen", "Svalbard e Jan Mayen", "Spitsbergen en Jan Mayen",
    )),
    ("SK", "SVK", (
        "Slovakia", "Slowakei", "Slovaquie", "Eslovaquia", "Slovacchia", "Eslováquia", "Slowakije",
    )),
    ("SL", "SLE", ("Sierra Leone", "Sierra Leona", "Serra Leoa")),
    ("SM", "SMR", ("San Marino", "Saint-Marin")),
    ("SN", "SEN", ("Senegal", "Sénégal")),
    ("SO", "SOM", ("Somalia", "Somalie", "Somália", "Somalië")),
    ("SR", "SUR", ("Suriname", "Surinam")),
    ("SS", "SSD", (
        "South Sudan", "Südsudan", "Soudan du Sud", "Sudán del Sur", "Sud Sudan", "Sudão do Sul",
        "Zuid-Soedan",
    )),
    ("ST", "STP", (
        "São Tomé & Príncipe", "São Tomé und Príncipe", "Sao Tomé-et-Principe",
        "Santo Tomé y Príncipe", "São Tomé e Príncipe", "Sao Tomé en Principe",
    )),
    ("SV", "SLV", ("El Salvador", "Salvador")),
    ("SX", "SXM", ("Sint Maarten", "Saint-Martin (partie néerlandaise)", "Sint-Maarten")),
    ("SY", "SYR", ("Syria", "Syrien", "Syrie", "Siria", "Síria", "Syrië")),
    ("SZ", "SWZ", ("Eswatini", "Esuatini", "Swaziland", "Essuatíni")),
    ("TC", "TCA", (
        "Turks & Caicos Islands", "Turks- und Caicosinseln", "Îles Turques-et-Caïques",
        "Islas Turcas y Caicos", "Isole Turks e Caicos", "Ilhas Turcas e Caicos",
        "Turks- en Caicoseilanden",
    )),
    ("TD", "TCD", ("Chad", "Tschad", "Tchad", "Ciad", "Chade", "Tsjaad")),
    ("TF", "ATF", (
        "French Southern Territories", "Französische Süd- und Antarktisgebiete",
        "Terres australes françaises", "Territorios Australes Franceses",
        "Terre australi francesi", "Territórios Franceses do Sul",
        "Franse Gebieden in de zuidelijke Indische Oceaan",
    )),
    ("TG", "TGO", ("Togo",)),
    ("TH", "THA", ("Thailand", "Thaïlande", "Tailandia", "Thailandia", "Tailândia")),
    ("TJ", "TJK", (
        "Tajikistan", "Tadschikistan", "Tadjikistan", "Tayikistán", "Tagikistan", "Tadjiquistão",
        "Tadzjikistan",
    )),
    ("TK", "TKL", ("Tokelau",)),
    ("TL", "TLS", ("Timor-Leste", "Timor oriental", "Timor Est", "Oost-Timor")),
    ("TM", "TKM", ("Turkmenistan", "Turkménistan", "Turkmenistán", "Turcomenistão")),
    ("TN", "TUN", ("Tunisia", "Tunesien", "Tunisie", "Túnez", "Tunísia", "Tunesië")),
    ("TO", "TON", ("Tonga",)),
    ("TR", "TUR", ("Turkey", "Türkei", "Turquie", "Turquía", "Turchia", "Turquia", "Turkije")),
    ("TT", "TTO", (
        "Trinidad & Tobago", "Trinidad und Tobago", "Trinité-et-Tobago", "Trinidad y Tobago",
        "Trinidad e Tobago", "Trinidad en Tobago",
    )),
    ("TV", "TUV", ("Tuvalu",)),
    ("TW", "TWN", ("Taiwan", "Taïwan", "Taiwán")),
    ("TZ", "TZA", ("Tanzania", "Tansania", "Tanzanie", "Tanzânia")),
    ("UA", "UKR", ("Ukraine", "Ucrania", "Ucraina", "Ucrânia", "Oekraïne")),
    ("UG", "UGA", ("Uganda", "Ouganda", "Oeganda")),
    ("UM", "UMI", (
        "U.S. Outlying Islands", "Amerikanische Überseeinseln",
        "Îles mineures éloignées des États-Unis", "Islas menores alejadas de EE. UU.",
        "Altre isole americane del Pacifico", "Ilhas Menores Distantes dos EUA",
        "Kleine afgelegen eilanden van de Verenigde Staten",
    )),
    ("US", "USA", (
        "United States", "Vereinigte Staaten", "États-Unis", "Estados Unidos", "Stati Uniti",
        "Verenigde Staten",
    )),
    ("UY", "URY", ("Uruguay", "Uruguai")),
    ("UZ", "UZB", (
        "Uzbekistan", "Usbekistan", "Ouzbékistan", "Uzbekistán", "Uzbequistão", "Oezbekistan",
    )),
    ("VA", "VAT", (
        "Vatican City", "Vatikanstadt", "État de la Cité du Vatican", "Ciudad del Vaticano",
        "Città del Vaticano", "Cidade do Vaticano", "Vaticaanstad",
    )),
    ("VC", "VCT", (
        "St. Vincent & Grenadines", "St. Vincent und die Grenadinen",
        "Saint-Vincent-et-les Grenadines", "San Vicente y las Granadinas",
        "Saint Vincent e Grenadine", "São Vicente e Granadinas", "Saint Vincent en de Grenadines",
    )),
    ("VE", "VEN", ("Venezuela",)),
    ("VG", "VGB", (
        "British Virgin Islands", "Britische Jungferninseln", "Îles Vierges britanniques",
        "Islas Vírgenes Británicas", "Isole Vergini Britanniche", "Ilhas Virgens Britânicas",
        "Britse Maagdeneilanden",
    )),
    ("VI", "VIR", (
        "U.S. Virgin Islands", "Amerikanische Jungferninseln", "Îles Vierges des États-Unis",
        "Islas Vírgenes de EE. UU.", "Isole Vergini Americane", "Ilhas Virgens Americanas",
        "Amerikaanse Maagdeneilanden",
    )),
    ("VN", "VNM", ("Vietnam", "Viêt Nam", "Vietnã")),
    ("VU", "VUT", ("Vanuatu",)),
    ("WF", "WLF", (
        "Wallis & Futuna", "Wallis und Futuna", "Wallis-et-Futuna", "Wallis y Futuna",
        "Wallis e Futuna", "Wallis en Futuna",
    )),
    ("WS", "WSM", ("Samoa",)),
    ("YE", "YEM", ("Yemen", "Jemen", "Yémen", "Iêmen")),
    ("YT", "MYT", ("Mayotte",)),
    ("ZA", "ZAF", (
        "South Africa", "Südafrika", "Afrique du Sud", "Sudáfrica", "Sudafrica", "África do Sul",
        "Zuid-Afrika",
    )),
    ("ZM", "ZMB", ("Zambia", "Sambia", "Zambie", "Zâmbia")),
    ("ZW", "ZWE", ("Zimbabwe", "Simbabwe", "Zimbabue", "Zimbábue")),
)

#: Other names and codes people write, mapped to ISO alpha-2 (native names, old names, 'UK').
COUNTRY_ALIASES: Mapping[str, str] = MappingProxyType({
    **dict.fromkeys(
        ("U.S.A.", "U.S.", "U S A", "United States of America", "America", "Amerika",
         "Estados Unidos de América", "Vereinigte Staaten von Amerika",
         "États-Unis d'Amérique", "Stati Uniti d'America"),
        "US",
    ),
    **dict.fromkeys(
        ("UK", "U.K.", "U K", "Great Britain", "Britain", "England", "Scotland", "Wales",
         "Northern Ireland", "Großbritannien", "Grande-Bretagne", "Gran Bretaña",
         "Gran Bretagna", "Inglaterra", "Angleterre", "Inghilterra", "Engeland",
         "Groot-Brittannië"),
        "GB",
    ),
    **dict.fromkeys(("Federal Republic of Germany", "Bundesrepublik Deutschland", "BRD"), "DE"),
    **dict.fromkeys(("Holland", "Pays Bas"), "NL"),
    **dict.fromkeys(("Belgique", "België", "Belgien"), "BE"),
    **dict.fromkeys(("Lëtzebuerg",), "LU"),
    **dict.fromkeys(("Éire", "Republic of Ireland"), "IE"),
    **dict.fromkeys(("Hellas", "Ellada", "Elláda"), "GR"),
    **dict.fromkeys(("Czech Republic", "Česko", "Česká republika"), "CZ"),
    **dict.fromkeys(("Slovensko",), "SK"),
    **dict.fromkeys(("Slovenija",), "SI"),
    **dict.fromkeys(("Hrvatska",), "HR"),
    **dict.fromkeys(("Srbija",), "RS"),
    **dict.fromkeys(("Crna Gora",), "ME"),
    **dict.fromkeys(("Shqipëria",), "AL"),
    **dict.fromkeys(("Magyarország",), "HU"),
    **dict.fromkeys(("Polska",), "PL"),
    **dict.fromkeys(("România",), "RO"),
    **dict.fromkeys(("Sverige",), "SE"),
    **dict.fromkeys(("Norge", "Noreg"), "NO"),
    **dict.fromkeys(("Danmark",), "DK"),
    **dict.fromkeys(("Suomi",), "FI"),
    **dict.fromkeys(("Ísland",), "IS"),
    **dict.fromkeys(("Eesti",), "EE"),
    **dict.fromkeys(("Latvija",), "LV"),
    **dict.fromkeys(("Lietuva",), "LT"),
    **dict.fromkeys(("Türkiye", "Turkiye"), "TR"),
    **dict.fromkeys(("Russian Federation", "Rossiya"), "RU"),
    **dict.fromkeys(("Korea", "Republic of Korea", "Korea, Republic of"), "KR"),
    **dict.fromkeys(("DPRK",), "KP"),
    **dict.fromkeys(("Ivory Coast",), "CI"),
    **dict.fromkeys(("Vatican", "Holy See"), "VA"),
    **dict.fromkeys(("Macedonia",), "MK"),
    **dict.fromkeys(("DR Congo", "DRC", "Democratic Republic of the Congo"), "CD"),
    **dict.fromkeys(("Republic of the Congo",), "CG"),
    **dict.fromkeys(("Burma",), "MM"),
    **dict.fromkeys(("Palestine",), "PS"),
    **dict.fromkeys(("Hong Kong",), "HK"),
    **dict.fromkeys(("Macau", "Macao"), "MO"),
    **dict.fromkeys(("UAE", "U.A.E.", "Emirates"), "AE"),
    **dict.fromkeys(("KSA",), "SA"),
    **dict.fromkeys(("Viet Nam",), "VN"),
    **dict.fromkeys(("Brasil",), "BR"),
    **dict.fromkeys(("Perú",), "PE"),
    **dict.fromkeys(("Nippon", "Nihon"), "JP"),
    **dict.fromkeys(("Zhongguo", "PRC", "People's Republic of China"), "CN"),
    **dict.fromkeys(("Bharat",), "IN"),
})

# --------------------------------------------------------------------------------------------
# Derived lookups (pure Python; cached)
# --------------------------------------------------------------------------------------------

_FOLD_TABLE = str.maketrans({src: dst for dst, srcs in ACCENT_FOLD.items() for src in srcs})
_DOTS_APOSTROPHES_RE = re.compile("[." + re.escape(APOSTROPHES) + "]")
_NON_WORD_RE = re.compile(r"[\W_]+")


def fold_text(text: str) -> str:
    """Python twin of ``functions.fold_accents``: lower-case, ASCII-folded Latin letters."""
    folded = text.lower()
    for src, dst in ACCENT_FOLD_MULTI.items():
        folded = folded.replace(src, dst)
    folded = folded.translate(_FOLD_TABLE)
    return "".join(ch for ch in folded if not unicodedata.category(ch).startswith("M"))


def lookup_key(text: str) -> str:
    """Python twin of the Spark lookup key: 'U.S.A.' -> 'usa', "Côte d'Ivoire" -> 'cote divoire'.

    Folded, dots and apostrophes removed, other non-letter/digit runs -> one space, trimmed,
    a leading 'the ' dropped.
    """
    key = _DOTS_APOSTROPHES_RE.sub("", fold_text(text))
    key = _NON_WORD_RE.sub(" ", key).strip()
    return key[4:] if key.startswith("the ") else key


@cache
def country_by_key() -> Mapping[str, str]:
    """Lookup key -> ISO alpha-2 for every alpha-2 and alpha-3 code, name and alias above.

    Raises:
        ValueError: two countries claim the same key (fix the table or add an alias).
    """
    table: dict[str, str] = {}
    for alpha2, alpha3, names in COUNTRIES:
        for name in (alpha2, alpha3, *names):
            key = lookup_key(name)
            if table.setdefault(key, alpha2) != alpha2:
                raise ValueError(f"country key {key!r} is claimed by {table[key]} and {alpha2}")
    for name, alpha2 in COUNTRY_ALIASES.items():
        table[lookup_key(name)] = alpha2
    return MappingProxyType(table)


#: Diminutives the ``nicknames`` package (American English) lacks: common European short
#: forms and a few English gaps. Canonical (folded, lower case) -> its short forms. A short
#: form may stand for several names (``toni``: antonio, antonia, anton); each is listed.
EXTRA_NICKNAMES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    # English gaps
    "william": ("liam", "wills"), "isabella": ("izzy", "issy", "izzie"),
    "isabel": ("izzy", "issy"), "amanda": ("mandy",), "alexander": ("sasha", "xander"),
    "alexandra": ("sasha", "lexi", "lexie"), "theodore": ("theo",), "oliver": ("ollie",),
    "josephine": ("josie",), "johanna": ("jo", "hanna", "hanne"),
    # classic English forms the package leaves out or ranks the wrong way round
    "john": ("jack", "jock"), "margaret": ("greta",), "elizabeth": ("elsie",),
    "robert": ("bert",), "charles": ("chas",), "katherine": ("kate", "kitty"),
    "david": ("davy",), "helen": ("nell",), "albert": ("al",), "gertrude": ("gertie",),
    "raymond": ("ray",),
    # German
    "sebastian": ("basti", "bastian"), "johannes": ("hans", "hannes", "jo"),
    "joseph": ("sepp", "seppi", "pepe", "beppe"), "josef": ("sepp", "seppi", "joe"),
    "stefanie": ("steffi",), "stephanie": ("steffi",), "franziska": ("franzi", "fanny"),
    "katharina": ("kathi", "katja", "kati", "kaethe"), "magdalena": ("lena", "leni", "magda"),
    "helena": ("lena", "leni"), "christian": ("chris", "christl"), "christina": ("tina",),
    "christine": ("tina", "christl"), "matthias": ("matze", "hias"),
    "friedrich": ("fritz", "friedl"), "wolfgang": ("wolf", "wolfi"), "ulrich": ("uli", "ulli"),
    "ulrike": ("uli", "ulla"), "gabriele": ("gabi", "gaby"), "gabriel": ("gabi",),
    "susanne": ("susi", "sanne"), "andreas": ("andi", "andy"), "florian": ("flo",),
    "tobias": ("tobi",), "dominik": ("domi",), "benedikt": ("bene", "ben"),
    "maximilian": ("max", "maxi"), "jakob": ("jake", "kobi"), "elisabeth": ("lisa", "elli",
                                                                            "lisbeth", "sissi"),
    "elisabetta": ("betta", "lisa"), "margarete": ("grete", "gretel", "marga"),
    "barbara": ("babsi", "barbi", "babs", "barb"), "annemarie": ("anne", "annemie"),
    "heinrich": ("heinz", "heini", "hinnerk"), "konstantin": ("konny", "kosta"),
    "cornelia": ("conny", "nele"), "thomas": ("tom", "tommy", "thomy"),
    "michael": ("michi", "mike", "micha"), "michaela": ("michi", "ela"),
    "daniela": ("dani", "ela"), "manuela": ("manu", "ela"), "manuel": ("manu", "manolo"),
    "nikolaus": ("klaus", "niko"), "ludwig": ("lutz", "lu"),
    "rudolf": ("rudi", "ruedi"), "walter": ("walti", "wally"), "ernst": ("erni",),
    "reinhard": ("reini",), "bernhard": ("bernd", "berni"), "gerhard": ("gerd", "gerdi"),
    "hannelore": ("hanne", "lore"), "eleonore": ("lore", "nora", "ella"),
    "dorothea": ("dora", "thea", "doro"), "theresa": ("resi", "thea", "tessa"),
    "therese": ("resi", "thea"),
    # French
    "francois": ("fanfan", "francky"), "francoise": ("fanfan", "franca", "francette"),
    "jean baptiste": ("jb",), "guillaume": ("guigui", "guy"), "frederic": ("fred", "freddy"),
    "frederique": ("fred",), "nicolas": ("nico", "colas"), "dominique": ("dom", "domi"),
    "philippe": ("phil", "flip"), "mathieu": ("matt", "mat"), "emmanuel": ("manu",),
    "emmanuelle": ("manue", "manu"), "genevieve": ("ginette", "vivi"),
    "isabelle": ("isa", "babette"), "benjamin": ("ben", "benji"),
    "christophe": ("chris", "tof"), "sebastien": ("seb", "sebas"),
    "stephane": ("steph",), "marguerite": ("margot", "guite"),
    "catherine": ("cathy", "cat", "kate", "kitty"),
    "jacqueline": ("jacquie", "jackie"), "jacques": ("jacquot", "jacky"),
    "alexandrine": ("alex",), "alexandre": ("alex",), "valerie": ("val",), "aurelie": ("aure",),
    # Spanish and Portuguese
    "jose": ("pepe", "pepito", "chepe"), "jose maria": ("chema", "josema"),
    "maria jose": ("majo", "marijose"), "francisco": ("paco", "pancho", "curro", "quico",
                                                      "fran", "chico", "chiquinho"),
    "francisca": ("paca", "paqui", "quica", "fran"), "ignacio": ("nacho", "inaki"),
    "dolores": ("lola", "loli", "lolita"), "guadalupe": ("lupe", "lupita"),
    "concepcion": ("concha", "conchi", "conchita"), "rosario": ("charo", "chayo"),
    "consuelo": ("chelo",), "mercedes": ("merche", "meche"), "pilar": ("pili", "pilarica"),
    "enrique": ("quique", "kike"), "antonio": ("toni", "tony", "tono"),
    "antonia": ("toni", "tona"), "anton": ("toni",),
    "jesus": ("chus", "chuy", "suso"), "alejandro": ("alex", "ale", "jandro"),
    "alejandra": ("ale", "alex", "sandra"), "eduardo": ("edu", "lalo"),
    "fernando": ("nando", "fer"), "gonzalo": ("gonza", "chalo"), "javier": ("javi",),
    "rafael": ("rafa", "rafi"), "ramon": ("moncho",), "joaquin": ("quino", "chimo"),
    "roberto": ("beto", "rober", "tito"), "alberto": ("beto", "tito"),
    "guillermo": ("guille", "memo"), "santiago": ("santi", "yago", "chago"),
    "salvador": ("salva", "chava"), "montserrat": ("montse",), "asuncion": ("chon", "asun"),
    "encarnacion": ("encarna", "encarni"), "inmaculada": ("inma", "macu"),
    "remedios": ("reme",), "purificacion": ("puri",), "esperanza": ("espe",),
    "ana isabel": ("anabel",), "maria isabel": ("maribel",), "maria luisa": ("marisa",),
    "maria teresa": ("maite", "marite"), "maria elena": ("malena",), "cristina": ("cris", "tina"),
    "joao": ("joaozinho",), "luis": ("lucho", "luisito"),
    # Italian
    "giuseppe": ("beppe", "peppe", "pino", "bepi"), "giovanni": ("gianni", "nanni", "vanni"),
    "luigi": ("gigi", "gino"), "alessandro": ("sandro", "ale"),
    "alessandra": ("sandra", "ale"), "francesco": ("checco", "cecco", "franco"),
    "vincenzo": ("enzo", "vince"), "domenico": ("mimmo", "mimi"),
    "salvatore": ("toto", "turi", "salvo"), "massimiliano": ("massi", "max"),
    "raffaele": ("lele",), "emanuele": ("lele", "manu"),
    "daniele": ("dani", "lele"), "federico": ("fede", "chicco"), "federica": ("fede",),
    "roberta": ("robi",), "margherita": ("rita", "ghita"), "caterina": ("rina", "cate"),
    "giuseppina": ("pina", "peppina"), "maddalena": ("lena", "magda"),
    "beatrice": ("bea", "bice"), "elisa": ("eli",), "leonardo": ("leo",),
    # Dutch and Nordic
    "pieter": ("piet",), "cornelis": ("kees", "cor"),
    "hendrik": ("henk", "hein"), "wilhelmina": ("mina", "willy", "wil"),
    "gerrit": ("gert",), "jacobus": ("koos", "sjaak"), "adrianus": ("arie", "ad"),
    "lars": ("lasse",), "nikolaj": ("nikke",), "kristoffer": ("kris", "stoffer"),
    "mette": ("mie",), "karoline": ("line", "karo"),
    # Slavic and others
    "aleksander": ("olek", "sasha"), "aleksandra": ("ola", "sasha"), "katarzyna": ("kasia",),
    "malgorzata": ("gosia", "malgosia"), "wojciech": ("wojtek",), "zbigniew": ("zbyszek",),
    "stanislaw": ("stasiek", "stas"), "mikhail": ("misha",), "dmitri": ("dima",),
    "ekaterina": ("katya", "katja"), "anastasia": ("nastya", "stacy"),
    "mehmet": ("memo",), "mustafa": ("musti",),
})


@cache
def nickname_table() -> Mapping[str, tuple[str, ...]]:
    """Given name -> sorted canonical names it may stand for, itself included.

    Built from the ``nicknames`` package (the carltonnorthern names list, ~1,400 nicknames),
    plus :data:`EXTRA_NICKNAMES` (European short forms it lacks).
    That list is a graph with noisy edges in both directions ('robert' is listed as a nickname
    of 'bob' and 'bill'), so only edges pointing to a *more canonical* name are kept: a name's
    canonicality is how many nicknames it has minus how many names it is a nickname of; a
    target must score higher than the nickname and above zero. Result: 'bob' -> (bob, robert),
    'liz' -> (elizabeth, liz), 'robert' -> absent (so just itself). Names that map only to
    themselves are left out to keep the Spark literal small.
    """
    from nicknames import NickNamer  # imported lazily: only the nickname lookup needs it

    namer = NickNamer()
    nick_of = namer.nickname_lookup  # canonical -> its nicknames
    canon_of = namer.canonical_lookup  # nickname -> its canonicals
    names = set(nick_of) | set(canon_of)
    score = {n: len(nick_of.get(n, ())) - len(canon_of.get(n, ())) for n in names}
    plain = re.compile(r"^[a-z]+$")
    table: dict[str, tuple[str, ...]] = {}
    for nick, canonicals in canon_of.items():
        if not plain.match(nick):
            continue  # entries such as 'l.b.' never survive name normalization
        keep = {c for c in canonicals if plain.match(c) and score[c] > max(score[nick], 0)}
        if keep:
            table[nick] = tuple(sorted(keep | {nick}))
    extra: dict[str, set[str]] = {}
    for canonical, nicks in EXTRA_NICKNAMES.items():
        for nick in nicks:
            extra.setdefault(nick, {nick}).add(canonical)
    for nick, canonicals in extra.items():
        table[nick] = tuple(sorted(canonicals | set(table.get(nick, ()))))
    return MappingProxyType(table)
