"""The rules engine on messages written the way patients write: context (negation, history, questions, jokes,
resolved, "not urgent"), numbers with units and ages, Spanish, typographic apostrophes, the clinic's phrases,
and the safety reply's lines. No database, no network."""

from __future__ import annotations

import pytest

from conversations.triage import assess_rules, safety_reply
from conversations.triage.kb import load


@pytest.mark.parametrize(
    ("text", "level", "code"),
    [
        ("I can\u2019t breathe right", "emergency", "breathing_difficulty"),  # curly apostrophe
        ("cant breath and my lips look kinda blue", "emergency", "breathing_difficulty"),
        ("my dad's face is drooping on one side and he's slurring his words", "emergency", "stroke"),
        ("I'm having a panic attack, my chest hurts", "emergency", "chest_pain_cardiac"),
        ("i took the whole bottle of my sleeping pills like an hour ago", "emergency", "overdose_poisoning"),
        ("I want to kill myself", "emergency", "suicide_self_harm"),
        ("im 28 weeks pregnant and bleeding alot", "emergency", "obstetric_bleeding"),
        ("my 2 month old has a fever of 104.5 and she's really floppy", "emergency", "infant_fever"),
        ("3 wk old baby temp 38.2C", "emergency", "infant_fever"),
        ("um our baby she's five weeks and it says a hundred point nine", "emergency", "infant_fever"),
        ("diabetic, sugar is 48 and I'm shaking", "emergency", "hypoglycaemia"),
        ("mi esposa se desmay\u00f3 y no responde", "emergency", "unresponsive"),
        ("mi bebe de 3 semanas tiene 38.5 de temperatura", "emergency", "infant_fever"),
        ("me quiero matar, ya tengo las pastillas", "emergency", "suicide_self_harm"),
    ],
)
def test_emergencies_in_lay_words(text, level, code):
    result = assess_rules(text)
    assert result.level == level and code in result.codes, result


@pytest.mark.parametrize(
    "text",
    [
        "I had chest pain last year, want a follow-up",
        "do you still run the stroke awareness class?",
        "what's the max tylenol so I don't overdose?",
        "booking for my son, not urgent",
        "omg your receptionist is hilarious i can't breathe \U0001f602 can I move my appt",
        "no chest pain, just a bad cough since monday",
        "the bleeding stopped yesterday, just want a checkup",
        "this wait is killing me lol, any openings friday?",
        "my 6 week old is 99.1, is that normal?",
        "no tengo dolor de pecho, solo quiero una cita",
        "casi me da un infarto cuando vi la cuenta jajaja",
    ],
)
def test_hard_negatives_do_not_page(text):
    assert assess_rules(text).level != "emergency", text


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("my wife is doubled over with stomach pain and throwing up, been 5 hours", "acute_abdomen"),
        ("my abdomen is swollen and hard and i havent pooped in 4 days and keep vomiting", "acute_abdomen"),
        ("my 15 yo woke up with really bad pain in his testicle, hes throwing up", "acute_abdomen"),
        ("a mi hija le duele much\u00edsimo la barriga del lado derecho, vomit\u00f3 dos veces", "acute_abdomen"),
        ("he\u2019s drunk and throwing things at me, i locked myself in the bathroom", "violence_abuse"),
        ("my daughter's boyfriend hit her and she has a black eye and he's still here", "violence_abuse"),
        ("I have thoughts of killing my roommate and I bought a knife", "violence_abuse"),
        ("hay un hombre con una pistola afuera de mi casa", "violence_abuse"),
        ("mi novio me quiere matar, estoy encerrada en el cuarto", "violence_abuse"),
        ("my mom has a UTI and today she doesn't recognize me", "sepsis_high_fever"),
        ("I'm on chemo and my temp is 100.9", "sepsis_high_fever"),
        ("mi hijo tiene calentura y le salieron manchas moradas en las piernas", "sepsis_high_fever"),
        ("my son is type 1, his sugar is 480 and he's throwing up and breathing really deep", "hyperglycaemia_dka"),
        ("el gluc\u00f3metro marca HI y mi mam\u00e1 est\u00e1 muy dormida", "hyperglycaemia_dka"),
        ("34 weeks pregnant, having contractions 5 minutes apart and they hurt a lot", "obstetric_emergency"),
        ("mi esposo dice que siente como si tuviera un elefante en el pecho", "chest_pain_cardiac"),
        ("my left arm and leg went numb and I can\u2019t see out of one eye", "stroke"),
        ("baby is grunting with every breath and her ribs are sucking in", "breathing_difficulty"),
        ("worst stomache ever, been vomitting all nite n cant stand up", "acute_abdomen"),
        ("hes beating me rn pls call someone", "violence_abuse"),
        ("a guy is following me and he has a gun", "violence_abuse"),
        ("grandma fevr 103 and talkin nonsense", "sepsis_high_fever"),
        ("waters broke at 33 weeks", "obstetric_emergency"),
        ("mi pap\u00e1 tiene fiebre alt\u00edsima y no sabe ni qui\u00e9n es", "sepsis_high_fever"),
        ("mi marido me golpi\u00f3 y me encerr\u00f3, tengo miedo", "violence_abuse"),
        ("mi ex me amenaz\u00f3 de muerte y est\u00e1 afuera", "violence_abuse"),
        ("mi ni\u00f1o no deja que le toque la barriga, grita y vomita", "acute_abdomen"),
        ("mi abuelito tiene infecci\u00f3n en el pie, se le puso negro y tiene fiebre", "sepsis_high_fever"),
        ("grandpa went stiff and was jerking all over, and he's still not back to normal 10 min later", "seizure"),
        ("estoy embarazada de 30 semanas y se me rompi\u00f3 la fuente", "obstetric_emergency"),
    ],
)
def test_emergencies_of_the_newer_categories(text, code):
    result = assess_rules(text)
    assert result.level == "emergency" and code in result.codes, result


@pytest.mark.parametrize(
    "text",
    [
        "severe stomach pain, no vomiting, no fever, started an hour ago after spicy food",  # signs judged in context
        "sugars 320-350 all day, thirsty but otherwise ok, no vomiting",
        "my boss will kill me if I'm late again, can I get the 7am slot",
        "ugh my husband is gonna kill me when he sees this bill \U0001f605 can i pay in installments",
        "my husband beat me at chess again lol, anyway need a refill on my lisinopril",
        "mi mam\u00e1 me va a matar si llego tarde otra vez jaja, \u00bfme cambian la cita?",
        "el doctor me peg\u00f3 la gripa jaja, necesito una nota para el trabajo",
        "i'm pregnant and need to push my appointment to friday",
        "had preterm labor with my first, want to talk about progesterone this time",
        "kind of confused about the fasting instructions for my labs",
        "our cat is hiding under the bed after the fireworks lol, anyway need a flu shot",
        "el mes pasado me golpearon en un asalto, necesito una nota para el seguro",
        "daughter 6 has had fever 3 days now 101-102, can we get seen today",  # 3 days of fever, not 3 days old
        "my daughter was in the hospital for DKA in may, need her follow up with endo",
        "mi ex me amenaza con quitarme a los ni\u00f1os, necesito copia de las vacunas para la corte",
        "my grandma gets confused in the evenings, she has dementia, can we book her memory clinic follow up",
        "my husband choked on a grape but coughed it out right away and is totally fine, anything to watch for?",
        "my wife\u2019s sugar was low this morning, she had juice and it\u2019s back to 112, can she see her doctor?",
    ],
)
def test_newer_categories_keep_idioms_and_history_routine(text):
    assert assess_rules(text).level != "emergency", text


@pytest.mark.parametrize(
    "text",
    [
        "32 weeks pregnant with my first baby and my water just broke",
        "im 34 weeks with my first and having contractions 5 minutes apart",
        "grandma with dementia is suddenly confused and burning up with fever 103",
        "my mom since this morning is confused with a fever of 102",
        "me duele el pecho cuando camino y sudo frio",
        "a veces me duele el pecho muy fuerte y sudo frio",
    ],
)
def test_words_that_soften_one_message_do_not_hide_a_present_emergency(text):
    """'with my first', a known dementia, 'confused with', exertion and 'a veces' do not make the present red flag
    history, habit or puzzlement."""
    assert assess_rules(text).level == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "my son threw up at her daycare",
        "toddler keeps throwing tantrums at me",
        "mi mamá me va a matar, reprobé el examen",
    ],
)
def test_vomiting_tantrums_and_a_figure_of_speech_are_not_violence(text):
    assert assess_rules(text).level != "emergency"


def test_violence_reply_names_911_and_the_hotline_in_the_patients_language():
    reply = safety_reply(assess_rules("mi esposo me est\u00e1 golpeando"), clinic="Sunrise Clinic")
    assert "llame al 911" in reply and "1-800-799-7233" in reply and "Violencia Doméstica" in reply


def test_a_family_member_in_danger_now_is_still_an_emergency():
    assert assess_rules("my mom might be having a stroke, her arm went limp").level == "emergency"


def test_explicit_not_urgent_softens_to_a_callback_but_never_to_nothing():
    assert assess_rules("not urgent but my chest has felt tight on and off").level == "urgent"


def test_clinic_phrases_add_to_the_core_rules_and_cannot_remove_them():
    assert assess_rules("the dog ate my insulin pen cap", phrases=["insulin pen cap"]).level == "emergency"
    assert assess_rules("I can't breathe", phrases=[]).level == "emergency"  # an empty list switches nothing off


def test_language_intent_and_knowledge_base_version_are_reported():
    result = assess_rules("hola, quiero cancelar mi cita del martes")
    assert (result.language, result.intent, result.level) == ("es", "cancel_appointment", "routine")
    assert result.kb_version == load().version and result.engine == "rules"
    assert assess_rules("why was I billed twice").intent == "billing"
    assert assess_rules("can I schedule a physical").intent == "book_appointment"


@pytest.mark.parametrize(
    ("text", "expected", "absent"),
    [
        ("I want to end my life tonight", "988", "1-800-222-1222"),
        ("my toddler swallowed a button battery", "1-800-222-1222", "988"),
        ("my husband collapsed and isn't breathing", "911", "988"),
        ("me quiero morir", "988", "1-800"),
    ],
)
def test_safety_reply_names_the_right_line(text, expected, absent):
    reply = safety_reply(assess_rules(text), clinic="Sunrise Clinic")
    assert expected in reply and absent not in reply
    assert "book" not in reply.lower()


def test_safety_reply_is_in_the_patients_language_and_carries_no_symptom():
    reply = safety_reply(assess_rules("mi papá tiene la cara chueca y no puede hablar"), clinic="Sunrise Clinic")
    assert "Llame al 911" in reply and "Sunrise Clinic" in reply
    assert "cara" not in reply and "hablar" not in reply


def test_every_category_cites_a_public_source():
    kb = load()
    assert all(c.source for c in kb.categories.values())
    assert {"en", "es"} <= set(kb.languages)
    flagged = {f.code for lang in kb.languages.values() for f in lang.flags}
    emergency = {code for code, c in kb.categories.items() if c.level == "emergency"} - {"clinic_emergency_phrase"}
    assert emergency <= flagged


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # upper GI bleeding and peritonism (NHS inform, Merck acute abdomen)
        ("my dad just threw up stuff that looks like coffee grounds and hes super pale", "acute_abdomen"),
        ("poop's been black n sticky like tar since sat, i get dizzy when i stand", "acute_abdomen"),
        ("mi tía está vomitando algo como café molido y está bien pálida", "acute_abdomen"),
        ("llevo 2 dias haciendo popo negra como chapopote y me siento bien debil", "acute_abdomen"),
        (
            "stomach hurts everywhere and its rock hard, i have to lie totally still bc moving makes it worse",
            "acute_abdomen",
        ),
        ("tengo un dolor de panza que me dobla desde ayer y ahora fiebre, no puedo ni caminar", "acute_abdomen"),
        # C-SSRS: method, plan, preparatory acts
        ("in the garage w the car running rn. just wanted someone to know", "suicide_self_harm"),
        ("refill my xanax early pls, need enough so i dont wake up this time", "suicide_self_harm"),
        ("im gonna take all my meds at once tonight, sorry", "suicide_self_harm"),
        ("ya no tengo ganas de seguir, ya tengo la soga", "suicide_self_harm"),
        ("honestly tired of living. got a noose in the closet", "suicide_self_harm"),
        ("every day i think about driving off the bridge on the way home", "suicide_self_harm"),
        ("my brother just facetimed me, his wrists are all cut and hes saying goodbye", "suicide_self_harm"),
        ("estoy juntando pastillas para ya no despertar", "suicide_self_harm"),
        ("mi hermano dice que si su novia lo deja se mata, tiene una pistola", "suicide_self_harm"),
        # violence and abuse now
        ("my 8yo told me her swim coach touched her in her private area today", "violence_abuse"),
        (
            "pretty sure my drink got spiked at the bar last night, i woke up at some guys place and dont remember",
            "violence_abuse",
        ),
        ("my 2 month old has bruises on his chest and my bf was watching him", "violence_abuse"),
        ("hay un hombre armado en el estacionamiento de la clinica", "violence_abuse"),
        ("mi hija dice que su padrastro la toca en la noche", "violence_abuse"),
        ("mi ex me anda siguiendo desde el trabajo y dice que me va a hacer daño, esta afuera", "violence_abuse"),
        ("tengo el azúcar en 540, mucha sed y no paro de orinar", "hyperglycaemia_dka"),
        ("pain began by my belly button n now its lower right, hurts to walk, 101 fever", "acute_abdomen"),
        ("throwing up green, havent passed gas or pooped since thursday, tummy is swollen", "acute_abdomen"),
    ],
)
def test_gi_bleeding_peritonism_cssrs_and_abuse_disclosures_page(text, code):
    result = assess_rules(text)
    assert result.level == "emergency" and code in result.codes, result


@pytest.mark.parametrize(
    "text",
    [
        "my poop has been black since i started the iron pills, is that normal?",
        "el mes pasado vomité con sangre por una gastritis, ya estoy bien, quiero mi cita de seguimiento",
        "does the clinic do sexual assault awareness training for the nurses? for my school project",
        "my grandma used to say coffee grounds in the garden keep the bugs away, anyway can I book a flu shot",
        "can i get enough refills so i dont run out over the holidays",
        "¿cómo sabría si mi hijo tiene apendicitis? ahorita está bien, nomás pregunto",
        "I won't need them after this weekend, we're moving to Denver, please cancel my appts",
        "my ex said he's gonna hurt me if I don't pay him back lol, anyway can I move my appt",
        "el azúcar me salió en 450 hace un año, ya estoy controlado, quiero mi cita",
    ],
)
def test_the_new_rules_keep_questions_history_and_ordinary_causes_routine(text):
    assert assess_rules(text).level != "emergency"


def _emergency_findings(text: str) -> list[tuple[str, str]]:
    from conversations.triage import rules
    from conversations.triage.text import normalise

    result = assess_rules(text)
    return [(f.code, f.text) for f in rules.findings(normalise(text), result.language) if f.level == "emergency"]


def test_two_rules_needing_the_same_sign_each_keep_it():
    """Green vomit and no stool are two acute-abdomen rules that both need the vomiting: spaCy keys a span's
    extension values by its offsets, so the one "vomiting" sign must still count for each rule."""
    found = _emergency_findings("grandma hasnt had a bowel movement in 4 days and she is vomiting dark green stuff")
    assert ("acute_abdomen", "vomiting dark green") in found, found
    assert ("acute_abdomen", "hasnt had a bowel movement") in found, found


def test_a_flag_keeps_its_own_settings_when_a_weaker_flag_covers_the_same_words():
    """The words 'banged my head' are both a head injury (a danger sign the day after still pages) and an urgent symptom
    (softened by "last night"): the head injury must not take the urgent rule's settings."""
    found = _emergency_findings("banged my head on the shelf last night n today i feel dizzy n keep forgetting stuff")
    assert ("head_injury", "banged my head") in found, found


@pytest.mark.parametrize(
    "text",
    [
        "my son banged his head at practice, no vomiting, no confusion, just a goose egg",
        "smacked my forehead on the cupboard, not throwing up or dizzy, just sore",
        "mi hijo se pegó en la cabeza con la puerta, no ha vomitado ni está mareado, solo le duele un poco",
    ],
)
def test_a_bump_whose_danger_signs_are_denied_is_no_head_injury_emergency(text):
    assert not [c for c, _ in _emergency_findings(text) if c == "head_injury"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("fell off his scooter, no helmet and his left pupil is way bigger than the right", "head_injury"),
        ("no fever no rash, but all of a sudden her face droops on the left and her speech is slurred", "stroke"),
        ("no tiene fiebre ni tos, pero de repente se le torció la boca y no puede hablar bien", "stroke"),
        ("se cayó de la bici sin casco y le sale líquido clarito por la nariz", "head_injury"),
    ],
)
def test_a_denial_ends_where_its_clause_does(text, code):
    """A "no …" at the start of a message does not reach past a comma, "but" / "pero" or "and his …"."""
    assert code in [c for c, _ in _emergency_findings(text)], text


@pytest.mark.parametrize(
    "text",
    [
        "my sister fainted at the fair from the heat but she's totally fine now, does she need a checkup?",
        "i overdosed a couple years back, in recovery now, can i get a new patient appt",
        "me cortó el dedo una lata, ya no sangra pero creo que ocupo puntos, ¿tienen cita hoy?",
    ],
)
def test_resolved_and_past_events_stay_quiet_across_a_but(text):
    assert not _emergency_findings(text), text


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # 988 / AFSP warning signs and C-SSRS plan, means and preparatory acts, said without "suicide"
        (
            "thanks for everything doc. i won't be needing the refill, tell my mom i'm sorry. goodbye",
            "suicide_self_harm",
        ),
        ("picked the day, it's sunday. nobody will even notice", "suicide_self_harm"),
        ("my brother's find my iphone shows him at the overpass and he isnt picking up", "suicide_self_harm"),
        ("ive been saving up my sleeping pills for weeks, just wanted someone to know", "suicide_self_harm"),
        ("gave away my cat and all my books this week. i'm ready now", "suicide_self_harm"),
        ("burned myself with a lighter again last night and i want to try something worse", "suicide_self_harm"),
        ("i cant do this anymore, the rope is in my closet", "suicide_self_harm"),
        ("doctora gracias por todo, ya no voy a necesitar mis pastillas. cuiden a mi perrito", "suicide_self_harm"),
        ("ya junte todas mis pastillas, ya no aguanto mas", "suicide_self_harm"),
        ("mi hija esta en el puente y no contesta el telefono", "suicide_self_harm"),
        ("esta noche me tiro del puente, ya lo decidí", "suicide_self_harm"),
        ("me corte otra vez con la navaja y quiero hacer algo mas grande", "suicide_self_harm"),
        ("mi papá dice q ya no aguanta y tiene la pistola en la mano", "suicide_self_harm"),
        # NDVH / Danger Assessment / NCEA / NCMEC / RAINN
        ("he keeps texting that if he can't have me no one will", "violence_abuse"),
        ("my ex broke the protective order and is sitting in his truck outside my job", "violence_abuse"),
        ("she's screaming that she's going to stab me, i'm hiding in the closet", "violence_abuse"),
        ("some guy has been following me for 3 blocks and i'm alone", "violence_abuse"),
        ("my son in law locked grandpa in the basement and he hasnt eaten since yesterday", "violence_abuse"),
        ("i can hear the kid next door screaming and what sounds like someone getting hit", "violence_abuse"),
        ("her stepfather touches her when mom is at work, she's 12", "violence_abuse"),
        ("i think someone slipped something into my drink, i can barely stand", "violence_abuse"),
        ("me dijo que si no soy suya no soy de nadie y está afuera", "violence_abuse"),
        ("mi ex se saltó la orden de restricción y está afuera de la escuela de mis hijos", "violence_abuse"),
        ("un tipo me anda siguiendo desde la parada y tengo miedo", "violence_abuse"),
        ("la cuidadora le pega a mi abuelo y lo tiene encerrado sin comer", "violence_abuse"),
        ("se oyen gritos y golpes en el departamento de al lado, es una señora sola", "violence_abuse"),
        ("desperté en un cuarto que no conozco sin ropa y no recuerdo nada", "violence_abuse"),
        ("ayuda mi cuñado trae un machete y esta gritando", "violence_abuse"),
        # ACOG ectopic pregnancy and abruption; bowel obstruction; appendicitis in a child
        (
            "found out im pregnant like 6 weeks, now stabbing pain on my right side and i almost fainted",
            "acute_abdomen",
        ),
        ("missed my period, really sharp pain low on the left and im spotting", "acute_abdomen"),
        ("after my gastric bypass i can't keep anything down and the belly pain is severe", "acute_abdomen"),
        ("my 6 year old is clutching his lower right side, won't let me touch it, won't jump", "acute_abdomen"),
        ("la prueba salió positiva y tengo un dolor como cuchillo del lado izquierdo y me mareé", "acute_abdomen"),
        ("no he podido hacer popó ni echar gases en 4 días y vomito todo", "acute_abdomen"),
        ("30 weeks and my belly has been hard as a rock and hurting constantly, never lets up", "obstetric_emergency"),
        ("been thinking about ending things, wrote my kids each a letter", "suicide_self_harm"),
        ("i keep looking up the lethal dose of my antidepressant and i have 3 bottles", "suicide_self_harm"),
        ("his text says he's sorry and he loves us and now it goes straight to voicemail", "suicide_self_harm"),
        ("my wife is sitting in the car in the closed garage with the engine on", "suicide_self_harm"),
        ("mi hermano dijo que se va a aventar del puente de la autopista", "suicide_self_harm"),
        ("my ex texted that he's going to kill me and he knows where i live", "violence_abuse"),
        ("there's a guy on our porch trying the door handle, we're home alone", "violence_abuse"),
        ("a man followed me home from the bus stop and is still outside", "violence_abuse"),
        ("my partner locked me in and took the car keys, says he's not done with me", "violence_abuse"),
        ("is the forensic exam free? i was assaulted, it happened last night", "violence_abuse"),
        ("mi ex me manda mensajes de que me va a matar y sabe dónde vivo", "violence_abuse"),
        ("abusaron de mi sobrina de 6 años, fue su padrastro", "violence_abuse"),
        ("my 8 month old keeps screaming and pulling his knees up, and threw up twice", "acute_abdomen"),
        ("hasnt been able to go number 2 in 6 days, belly is bloated and hard and he's throwing up", "acute_abdomen"),
        ("se cayó de la bici, se pegó en la cabeza y se le olvida todo lo que le digo", "head_injury"),
        ("out of nowhere got this stabbing pain low on my right side, been puking for an hour", "acute_abdomen"),
        ("the hernia in my groin came out and now its firm and won't go back in", "acute_abdomen"),
        ("his eyes have gone yellow and he's got chills and a fever of 101.8", "acute_abdomen"),
        ("2 days after my colonoscopy my stomach is bloated and hard, temp 38.9", "acute_abdomen"),
        ("my son flew over his handlebars onto his stomach and now he's pale and dizzy", "acute_abdomen"),
        ("me salió la hernia del ombligo y ya no se mete, está morada", "acute_abdomen"),
        ("a mi esposo le sacaron la vesícula el lunes y ahora tiene la panza hinchada y calentura", "acute_abdomen"),
        ("i know i have a kidney stone but now i'm shaking with chills and 102 fever", "sepsis_high_fever"),
        ("a coworker keeps saying he'll shoot up the office on friday", "violence_abuse"),
        ("i keep getting thoughts of smothering my newborn and it scares me", "violence_abuse"),
        ("two guys are beating a man in the parking lot right now, he's not moving", "violence_abuse"),
        ("my stepdad shoved my mom into the dresser and she hit her head", "violence_abuse"),
        ("the family i work for keeps my passport and says i owe them, i can't leave", "violence_abuse"),
        ("mi esposo me empujó contra la pared y me duele mucho el brazo", "violence_abuse"),
        ("tengo ganas de lastimar a mi bebé y no sé qué hacer", "violence_abuse"),
        ("el papá de mis hijos se los llevó y no me los quiere regresar, me amenazó", "violence_abuse"),
        ("what should i do?? my dad's belly is hard as a board and he can't move for the pain", "acute_abdomen"),
        ("should i go to the ER? the appendix area is killing me and i have a fever now", "acute_abdomen"),
        (
            "her pain was by her belly button this morning, now it's moved to the right side and she threw up",
            "acute_abdomen",
        ),
        ("the pain went away for an hour but now my whole belly hurts and i'm burning up", "acute_abdomen"),
        ("quick q, been a week with no poop and i'm throwing up everything i drink", "acute_abdomen"),
        ("¿es normal? mi papá no ha ido al baño en 6 días, tiene la panza inflada y vomita", "acute_abdomen"),
        ("he told me if i ever leave he will find me and kill me, i'm packing now", "violence_abuse"),
        ("my husband did this to my arm and says he's coming back tonight", "violence_abuse"),
        ("my son's tutor touches him during lessons, he's 9", "violence_abuse"),
        ("i think there's someone inside our garage, i can hear them moving stuff, i'm alone", "violence_abuse"),
        ("hay alguien metido en mi casa, oigo pasos abajo y estoy sola", "violence_abuse"),
        ("mi pareja me golpeó anoche y dice que la próxima vez va a ser peor", "violence_abuse"),
        ("cramps so bad im laying on the bathroom floor, cant get up, puked 3x", "acute_abdomen"),
        ("abd pain 9/10 since midnight, guarding, n/v", "acute_abdomen"),
        ("my right side of my belly hurts way more when i cough or walk", "acute_abdomen"),
        ("my boyfriend held a knife to my throat last night, he's sleeping now", "violence_abuse"),
        ("a kid showed my son a gun at school and said tomorrow he'd use it", "violence_abuse"),
        ("he held me down and didn't stop when i said no", "violence_abuse"),
        ("someone smashed our back window and is trying to climb in", "violence_abuse"),
        ("mi esposo me puso la pistola en la cabeza anoche, ahorita está dormido", "violence_abuse"),
        ("un niño llevó una pistola a la escuela y dijo que mañana la va a usar", "violence_abuse"),
        ("mi novia me enterró unas tijeras en la pierna", "violence_abuse"),
        ("mi padrastro se mete a mi cuarto en la noche cuando mi mamá duerme y me toca", "violence_abuse"),
        ("me empujó por las escaleras y no puedo mover la pierna", "violence_abuse"),
        # Epilepsy Foundation: seizures one after another without waking in between → 911
        ("a mi hijo le dio una convulsión y lleva más de 5 minutos, no se le quita", "seizure"),
        ("a mi papá le dieron dos ataques seguidos y todavía no ha despertado", "seizure"),
    ],
)
def test_warning_signs_in_other_words_page(text, code):
    assert code in [c for c, _ in _emergency_findings(text)], (text, _emergency_findings(text))
    assert assess_rules(text).level == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "moving to portland next month, thanks for everything dr smith, goodbye and please cancel my appts",
        "we set the date for the wedding! can i move my physical",
        "stuck in traffic on the bridge rn, running 10 min late",
        "i cut myself chopping onions, not deep, do i need a tetanus shot?",
        "my toddler keeps following me around the house crying, teething?",
        "my boss won't let me leave early, can i get a 5pm slot",
        "saw on the news a man got stabbed near the mall, are you open today",
        "do you offer the forensic exam for sexual assault or only the hospital? asking for a class",
        "nos mudamos a texas, gracias por todo doctora, adiós",
        "estoy en el puente atorada en el tráfico, voy a llegar tarde",
        "mi hijo de 2 años me sigue a todos lados llorando, será normal?",
        "positive pregnancy test yesterday!! when should i book my first ultrasound",
        "someone was trying car door handles in the parking lot last week, do you have security?",
        "my dog followed me home from the park lol, unrelated, need a tb test",
        "encerré a mi perro en el cuarto porque le tiene miedo a los cohetes",
        "mi hija se va a tirar a la alberca del hotel, ¿qué bloqueador recomiendan?",
        "how much is the sexual assault awareness class? my daughter's school recommended it",
        "tengo temblores en las manos por los nervios que no se me quitan, ¿me pueden dar cita?",
        "the hernia bulge is small and pops back in easily, want to book the repair consult",
        "i passed a kidney stone in march, can i get a urology referral",
        "we're gonna beat them at the tournament tomorrow, he needs his sports physical",
        "my ex has the kids this weekend, can we move their checkup to monday",
        "do i need to bring my passport or just my id to the appointment?",
        "tengo una hernia chiquita que se mete sola, quiero cita para que la revisen",
        "me operaron de la vesícula hace un año y estoy bien, quiero mi chequeo",
        "what should i do about his constipation, no poop in 3 days but he's eating and not vomiting",
        "there's someone in my house fixing the sink, can i move my appt to 4",
        "if i tell my mom i failed she'll kill me lol",
        "it's going to be even worse tomorrow when the snow hits, can i come in today?",
        "¿qué hago? mi hijo no ha ido al baño en 2 días, pero come bien y no vomita",
        "va a ser peor el tráfico mañana, ¿me pueden dar cita hoy?",
        "period cramps so bad i was on the bathroom floor this morning, can i get something stronger?",
        "my son's class is doing a unit on school safety, do you have a pamphlet about guns at home?",
    ],
)
def test_goodbyes_dates_bridges_and_news_with_an_ordinary_reason_stay_quiet(text):
    assert not _emergency_findings(text), (text, _emergency_findings(text))
    assert assess_rules(text).level != "emergency"


def test_a_message_triaged_again_in_the_same_process_is_remembered_per_clinic_phrases():
    from conversations.triage import service

    service.forget_recent()
    text = "my grandpa’s lips r turning blue and he wont wake up"
    first = service.assess_rules(text)

    assert service.assess_rules(text) is first  # the screening and the agent's turn share one computation
    with_phrase = service.assess_rules("code lavender in room 4", phrases=["code lavender"])
    assert with_phrase.level == "emergency"
    assert service.assess_rules("code lavender in room 4").level != "emergency"  # phrases are part of the key


def test_swapping_the_model_forgets_what_was_remembered():
    from conversations.triage import service
    from conversations.triage.evaluation import leaving_out

    text = "feel like the walls r closing in, i dont want to be here anymore"
    before = service.assess_rules(text)
    with leaving_out("blind_dev6"):
        assert service.assess_rules(text) is not before
    assert service.assess_rules(text) is not before
