#!/usr/bin/env python3
"""Generates the bundled demo domain: customer messages to "Northwind Mobile", a fictional
broadband and mobile provider, each with the intent it was written for (the gold label).

Standard library only, fixed seed: running it again writes byte-identical files.

    python3 scripts/make_demo_data.py            # writes demo/messages.jsonl, demo/labels.json
    python3 scripts/make_demo_data.py --check    # fails if the committed files are out of date

Messages are composed from many templates per intent, slot fillers (amounts, order and account
numbers, names, places, devices), openers and closers in several tones (polite, angry, terse),
and typo injection. Some intents share vocabulary on purpose (slow internet and network outage,
refund status and billing dispute, payment failed and billing dispute, upgrade plan and data
usage, SIM activation and porting a number, lost phone and SIM problems, router setup and slow
internet, change of address and moving broadband) so a bag-of-words student does well but not
perfectly.
"""

import argparse
import json
import os
import random
import sys

SEED = 20261130
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# ---- slot fillers --------------------------------------------------------------------------

FIRST = ["Sarah", "James", "Priya", "Tom", "Aisha", "Daniel", "Emma", "Mohammed", "Chloe", "Liam",
         "Grace", "Oliver", "Fatima", "Jack", "Sophie", "Ravi", "Hannah", "Kwame", "Lucy", "Marek",
         "Niamh", "Owen", "Zara", "Ben", "Ana", "Callum", "Mei", "Rhys", "Ines", "Tariq"]
LAST = ["Patel", "Smith", "Jones", "O'Brien", "Nowak", "Williams", "Khan", "Taylor", "Evans",
        "Murphy", "Chen", "Davies", "Okafor", "Brown", "Walsh", "Singh", "Hughes", "Kowalski",
        "Roberts", "Ahmed"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
COUNTRIES = ["Spain", "France", "Portugal", "the US", "Italy", "Greece", "Turkey", "Dubai",
             "Canada", "Germany", "Thailand", "Morocco", "Ireland", "Croatia", "Japan", "Mexico"]
TOWNS = ["Leeds", "Bristol", "Cardiff", "Norwich", "Derby", "York", "Swansea", "Reading",
         "Bolton", "Exeter", "Dundee", "Preston", "Hull", "Luton", "Bath", "Stockport"]
STREETS = ["Mill Lane", "Station Road", "Church Street", "Park Avenue", "Victoria Road",
           "Queens Drive", "Orchard Close", "High Street", "Elm Grove", "Kingsway"]
PHONES = ["iPhone 13", "iPhone 15", "Galaxy S23", "Pixel 7", "Galaxy A54", "iPhone 12",
          "Pixel 8 Pro", "Moto G84", "iPhone SE", "Galaxy Z Flip"]
PLANS = ["Unlimited Plus", "Essentials 10GB", "Flex 30GB", "Family Share", "Fibre 150",
         "Fibre 500", "SIM Only 20GB", "Starter 5GB", "Fibre 900", "Unlimited Max"]
ROUTERS = ["Northwind Hub 3", "Hub 2", "the white Northwind router", "Smart Hub", "Hub 4",
           "the new hub"]
DAYS = ["two days", "three days", "a week", "since Monday", "since yesterday", "four days",
        "since the weekend", "10 days", "since Friday", "all morning", "24 hours", "a fortnight"]
SPEEDS = ["2Mbps", "3 meg", "0.5 Mbps", "5Mbps", "under 1Mbps", "about 8Mbps", "1.2Mbps"]
PAID_SPEEDS = ["150Mbps", "500Mbps", "900 meg", "67Mbps", "300Mbps"]
PAY_METHODS = ["card", "debit card", "direct debit", "credit card", "Apple Pay", "PayPal"]


def amount(rng):
    return "\u00a3" + rng.choice([f"{rng.randint(5, 140)}.{rng.randint(0, 99):02d}",
                                   str(rng.randint(10, 250)), f"{rng.randint(20, 90)}.99"])


def slots(rng):
    """One set of fillers; each template takes the ones it names."""
    first = rng.choice(FIRST)
    return {
        "amount": amount(rng),
        "amount2": amount(rng),
        "order": rng.choice(["NW-", "NW", "ORD-", "#"]) + str(rng.randint(100000, 999999)),
        "account": rng.choice(["", "ACC", "acc ", "A/C "]) + str(rng.randint(10000000, 99999999)),
        "ticket": rng.choice(["#", "ref ", "case ", "ticket "]) + str(rng.randint(10000, 99999)),
        "number": "07700 900" + f"{rng.randint(0, 999):03d}",
        "name": first,
        "fullname": first + " " + rng.choice(LAST),
        "month": rng.choice(MONTHS),
        "country": rng.choice(COUNTRIES),
        "town": rng.choice(TOWNS),
        "street": f"{rng.randint(1, 220)} {rng.choice(STREETS)}",
        "phone": rng.choice(PHONES),
        "plan": rng.choice(PLANS),
        "plan2": rng.choice(PLANS),
        "router": rng.choice(ROUTERS),
        "days": rng.choice(DAYS),
        "speed": rng.choice(SPEEDS),
        "paid": rng.choice(PAID_SPEEDS),
        "method": rng.choice(PAY_METHODS),
        "gb": str(rng.choice([2, 5, 8, 10, 15, 20, 30, 50])),
        "pct": str(rng.choice([80, 90, 95, 100])),
        "n": str(rng.randint(2, 6)),
        "postcode": rng.choice(["LS6", "BS3", "CF10", "NR2", "DE1", "YO31", "SA1", "RG1"]) +
        f" {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
    }


# ---- intents: core sentences, short forms and extra details ---------------------------------
# Each intent has "core" (the request itself; many phrasings), "short" (three to six words, the
# terse end of the range) and "detail" (optional context sentences that follow the core).

INTENTS = {
    "billing_dispute": {
        "core": [
            "Still being charged for the contract I cancelled, I want that money back.",
            "A payment of {amount} came out of my account that I didn't authorise.",
            "The refund you gave doesn't cover the overcharge, my bill is still wrong.",
            "My bill for {month} is {amount} but it's normally {amount2}, what is this extra charge?",
            "I've been charged {amount} for something I never signed up for.",
            "Why has my bill gone up to {amount}? Nobody told me about a price rise.",
            "There's a charge on my account for {amount} that I don't recognise.",
            "You've billed me twice for {month}, I want the duplicate charge removed.",
            "I'm disputing the {amount} on my latest bill, it's wrong.",
            "My invoice shows premium rate calls I never made, {amount} worth.",
            "I was told my plan would be {amount2} a month and you're charging {amount}.",
            "Can someone explain the 'out of bundle' charges on my bill?",
            "The bill says I owe {amount} but I paid in full last month.",
            "I want my money back for the {amount} charge I never agreed to.",
            "You charged me a cancellation fee even though I'm still a customer??",
            "There's a {amount} late payment fee but my direct debit went out on time.",
            "I got charged roaming on my bill but I never left the country.",
            "My account is showing an overcharge of {amount}, please correct my bill.",
            "Why am I paying for {plan} when I downgraded to {plan2} in {month}?",
            "This month's bill doesn't add up, I've been overcharged.",
            "I'm being charged for a router rental I returned months ago.",
        ],
        "short": ["wrong bill", "overcharged again", "bill too high", "dispute a charge",
                  "why is my bill {amount}", "charge i dont recognise", "incorrect bill {month}",
                  "query on my bill"],
        "detail": ["My account number is {account}.", "I've checked my usage and it's normal.",
                   "I have the previous bills to prove it.", "This is the second month in a row.",
                   "I didn't make any calls abroad.", "The charge is dated {month}.",
                   "I want an itemised explanation."],
    },
    "refund_status": {
        "core": [
            "You accepted the overcharge on my bill, when do I actually get the money?",
            "The charge was wrong and you agreed, when will it be credited back?",
            "Payment was taken twice and one was meant to be returned, still waiting.",
            "I was promised a refund of {amount} on {ticket}, where is it?",
            "When will I get my refund? It's been {days}.",
            "Can you check the status of my refund for order {order}?",
            "Your agent agreed the bill was wrong and said I'd get {amount} back, still nothing.",
            "I returned the {phone} and I'm still waiting for the refund.",
            "Has my refund been processed yet? Order {order}.",
            "Still no refund after cancelling, it's been {days}.",
            "How long do refunds usually take to show on my {method}?",
            "The credit you said would go on my account hasn't appeared.",
            "I was told {amount} would be refunded to my card within 5 days. It's been {days}.",
            "Where's my money? Refund for {order} was approved weeks ago.",
            "I overpaid my bill by {amount} and asked for it back, any update?",
            "Just checking on the refund for the duplicate payment in {month}.",
            "My refund shows as 'pending' in the app, what does that mean?",
            "You refunded {amount2} instead of {amount}, where is the rest?",
        ],
        "short": ["refund status?", "where is my refund", "still no refund", "refund update please",
                  "refund for {order}", "any news on my refund", "refund not received"],
        "detail": ["The reference was {ticket}.", "I spoke to {name} on the phone.",
                   "It was approved on the {n}th.", "My bank says nothing has come in.",
                   "I returned it by recorded delivery.", "I have the confirmation email."],
    },
    "cancel_contract": {
        "core": [
            "Moving abroad so I need to end everything with you.",
            "Moving in with someone who has broadband, so I want to cancel mine.",
            "I want to cancel my contract.",
            "Please cancel my {plan} plan at the end of this month.",
            "How do I cancel? My contract ends in {month}.",
            "I'm leaving Northwind, what's the early termination fee?",
            "I'd like to terminate my broadband contract, I'm moving abroad.",
            "Cancel my account please, I've had enough of the service.",
            "I want to give notice to end my mobile contract.",
            "What do I need to do to close my account and stop all payments?",
            "I've found a cheaper deal elsewhere so I'm cancelling.",
            "Can I cancel within the 14 day cooling off period? I signed up {days} ago.",
            "I'm out of contract now, please don't renew, just end it.",
            "My dad passed away and I need to cancel his contract, account {account}.",
            "How much will it cost me to leave before my contract ends?",
            "Please send me a cancellation confirmation for {account}.",
        ],
        "short": ["cancel contract", "cancel my account", "i want to leave", "terminate contract",
                  "how do i cancel", "end my contract please", "close account {account}"],
        "detail": ["I've been with you for {n} years.", "I'll return the router.",
                   "Please don't try to talk me out of it.", "My account number is {account}.",
                   "I want written confirmation.", "Nothing personal, the price is just too high."],
    },
    "upgrade_plan": {
        "core": [
            "I'm always going over my data allowance, what bigger plans are there?",
            "My usage is way over {gb}GB, is there a plan that suits me better?",
            "I'd like to upgrade to {plan}.",
            "Am I eligible for an upgrade? I've got a {phone} and want something newer.",
            "Can I move from {plan2} to {plan} without starting a new contract?",
            "What upgrade deals do you have for existing customers?",
            "I want to upgrade my broadband to {paid}.",
            "Can I get a bigger data allowance? I keep running out every month.",
            "I'd like to switch to an unlimited plan, how much is it?",
            "My upgrade date was in {month}, can I get the new {phone}?",
            "Thinking of upgrading to faster fibre, what's available at {postcode}?",
            "Can I add more data to my plan permanently rather than buying bolt-ons?",
            "I want a better plan, {plan2} isn't enough for me anymore.",
            "Is there a way to upgrade early if I pay something?",
            "Can I add a second line and upgrade to {plan} at the same time?",
        ],
        "short": ["upgrade please", "upgrade my plan", "am i due an upgrade", "want more data",
                  "upgrade to {plan}", "new phone upgrade", "faster broadband options"],
        "detail": ["I'm happy to sign another 24 months.", "My number is {number}.",
                   "I work from home so I need more.", "My son uses a lot of data gaming.",
                   "Budget is about {amount} a month.", "I've been loyal for {n} years."],
    },
    "roaming": {
        "core": [
            "No signal since landing in {country}, is it an outage or my settings?",
            "I'm going to {country} next week, will my phone work there?",
            "How much does it cost to use my data in {country}?",
            "My phone won't connect to any network in {country}.",
            "Do I need to turn on roaming before I travel to {country}?",
            "Is roaming included in {plan}?",
            "Landed in {country} and I have no data, roaming is switched on.",
            "What's the daily roaming charge for {country}?",
            "Can I use my minutes and texts in {country} at no extra cost?",
            "I got a text saying roaming is blocked on my account, I'm in {country}.",
            "Will I be charged for receiving calls while abroad in {country}?",
            "Going on holiday to {country}, is there a travel bolt-on?",
            "Calls work but mobile data doesn't in {country}, I've restarted twice.",
            "How do I stop roaming charges while I'm on a cruise?",
        ],
        "short": ["roaming in {country}?", "roaming not working", "abroad no signal",
                  "travel bolt-on", "roaming charges {country}", "data abroad?"],
        "detail": ["I'm there for {n} weeks.", "I fly on the {n}th.", "I have a {phone}.",
                   "Data roaming is definitely on.", "My number is {number}.",
                   "It worked fine last year."],
    },
    "sim_activation": {
        "core": [
            "I ported my number but the new SIM still shows no service.",
            "The number transfer went through but the SIM isn't active.",
            "My new SIM arrived but it says no service, how do I activate it?",
            "I can't activate my eSIM, the QR code doesn't work.",
            "Just got my SIM for order {order}, it's still not working after {days}.",
            "How long does it take for a new SIM to activate?",
            "The activation page keeps giving an error when I enter the SIM number.",
            "Replacement SIM isn't working, phone says SIM not provisioned.",
            "I put the new SIM in my {phone} and I only get emergency calls.",
            "Can you activate the SIM you sent me? Order {order}.",
            "Phone says 'invalid SIM' with your new card.",
            "I need help setting up an eSIM on my {phone}.",
            "My SIM was activated but I can't make calls or use data.",
            "Do I need a PIN to activate the SIM? The pack didn't include one.",
        ],
        "short": ["activate sim", "new sim not working", "esim activation", "sim says no service",
                  "activate my sim {order}", "sim not activated yet"],
        "detail": ["I've restarted the phone several times.", "The phone is unlocked.",
                   "The SIM serial ends in {n}{n}{n}.", "I got it in the post today.",
                   "I'm keeping my old number too.", "It's a nano SIM."],
    },
    "port_number": {
        "core": [
            "The new SIM works but it's on a temporary number, not my own.",
            "SIM is activated fine, I just need my old number moved onto it.",
            "I want to bring my number over from my old network, I have my PAC code.",
            "How do I keep my number {number} when I switch to you?",
            "My number transfer was due {days} ago and it still hasn't happened.",
            "I'm on a temporary number, when will my real number move across?",
            "I texted PAC to 65075 and got a code, where do I enter it?",
            "Can you port my number onto the new SIM? Order {order}.",
            "My old number has stopped working but the port to Northwind isn't done.",
            "I gave my PAC code when ordering but the transfer failed.",
            "Leaving Northwind and need a PAC code to take my number with me.",
            "Can I move my number to a different network and keep it?",
            "Number port stuck on 'in progress' since the {n}th.",
            "I want to transfer my work number {number} onto my Northwind account.",
        ],
        "short": ["port my number", "keep my number", "pac code please", "number transfer delay",
                  "transfer number {number}", "port number help"],
        "detail": ["The PAC code expires on the {n}th.", "The old network was ViaTel.",
                   "I need that number for work.", "The new SIM is activated.",
                   "I'm currently on a temporary number.", "My account is {account}."],
    },
    "network_outage": {
        "core": [
            "Internet was slow all week and now there's no connection at all.",
            "Speed test won't even run, the connection is completely gone.",
            "Signal bars disappeared and nothing loads, is there a fault in {town}?",
            "Is there an outage in {town}? No signal at all {days}.",
            "No service since this morning, is the network down?",
            "My internet is completely down, no connection at all.",
            "Is there a mast problem near {postcode}? Nobody on our street has signal.",
            "Broadband has been dead {days}, all the lights are red on the hub.",
            "Whole area has no mobile signal, what's going on?",
            "There's no internet in {town}, is there a known fault?",
            "Phone says 'No Service' everywhere I go in {town}.",
            "Internet dropped out completely at 9am and hasn't come back.",
            "Is the network down? Can't call, text or use data.",
            "Our fibre line went dead after the storm, nothing works.",
            "Service status page says no issues but I have zero signal in {town}.",
            "Total loss of broadband {days}, I work from home and can't work.",
        ],
        "short": ["network down?", "no signal {town}", "outage in my area", "no service at all",
                  "internet down", "broadband dead", "is there an outage"],
        "detail": ["My neighbours have the same problem.", "I've rebooted the router.",
                   "I work from home so this is urgent.", "I'm at {street}, {town}.",
                   "It's been like this {days}.", "The postcode is {postcode}."],
    },
    "slow_internet": {
        "core": [
            "Internet goes down for a few seconds every evening then comes back really slow.",
            "Is there a fault in {town}? Not fully down, but barely usable.",
            "Signal is weak indoors and data hardly works.",
            "My broadband is really slow, getting {speed} when I pay for {paid}.",
            "Internet keeps dropping out every evening and is painfully slow.",
            "Speed test shows {speed}, that's nowhere near what I was promised.",
            "Why is my internet so slow at night? Videos keep buffering.",
            "Mobile data is crawling in {town}, pages take forever to load.",
            "Since the upgrade my fibre is slower than before.",
            "The connection is unstable, it cuts out for a few seconds every hour.",
            "Streaming keeps buffering and gaming lag is terrible.",
            "I'm only getting {speed} on wifi even next to the router.",
            "Broadband speed has dropped massively {days}.",
            "4G is really slow in my house but full bars of signal.",
            "Video calls freeze constantly, the internet can't cope.",
            "Download speed is fine but upload is {speed}.",
        ],
        "short": ["internet slow", "slow broadband", "speeds terrible", "buffering all the time",
                  "slow data {town}", "connection keeps dropping", "only getting {speed}"],
        "detail": ["I've restarted the router several times.", "I'm paying for {paid}.",
                   "It's worse in the evenings.", "I've tried a cable, same result.",
                   "Only {n} devices are connected.", "The hub light is white."],
    },
    "router_setup": {
        "core": [
            "After setting up the hub the wifi won't connect to anything.",
            "Internet's down until I get this router configured, what are the settings?",
            "How do I set up the {router}? The lights keep flashing orange.",
            "I can't find the wifi password for my new router.",
            "How do I change my wifi name and password?",
            "The router arrived today, which cable goes where?",
            "Can't log into the router admin page, what's the default password?",
            "My {router} won't connect to the fibre box.",
            "How do I set up port forwarding on the {router}?",
            "Need help connecting my printer to the new hub's wifi.",
            "I want to use my own router instead of yours, what settings do I need?",
            "The hub setup says 'waiting for connection' and never finishes.",
            "How do I turn on the 5GHz band on my router?",
            "How do I factory reset the {router}?",
            "Do I need an engineer to install the router or can I do it myself?",
        ],
        "short": ["router setup help", "wifi password?", "set up new hub", "router lights flashing",
                  "change wifi name", "install {router}"],
        "detail": ["It's plugged into the master socket.", "I have the {router}.",
                   "The order number was {order}.", "I'm not very technical.",
                   "The manual isn't much help.", "The power light is on."],
    },
    "payment_failed": {
        "core": [
            "My bill payment of {amount} was rejected by your system.",
            "The charge wouldn't go through on my card so my bill is unpaid.",
            "Tried paying the {amount} on my bill, error every time.",
            "My payment of {amount} failed, how can I pay?",
            "The app says my {method} was declined but there's money in the account.",
            "I tried to pay my bill online and it keeps saying payment unsuccessful.",
            "I got an email saying my direct debit failed, what do I do now?",
            "Why was my card declined when paying for order {order}?",
            "Your system won't take my payment, I don't want to be cut off.",
            "Direct debit bounced this month, can I pay by card instead?",
            "Tried three times to top up {amount} and it fails every time.",
            "The payment page times out after I enter my card details.",
            "I updated my card but the payment still failed.",
            "Got a missed payment warning but I tried to pay and it was rejected.",
            "Can I set up a new direct debit? The last payment failed.",
        ],
        "short": ["payment failed", "card declined", "cant pay my bill", "direct debit failed",
                  "payment not going through", "top up failed"],
        "detail": ["My bank says there's no problem on their side.", "The card expires next year.",
                   "It's a {method}.", "The error code was {n}0{n}.", "My account is {account}.",
                   "I don't want a late fee for this."],
    },
    "change_address": {
        "core": [
            "Moving house, do I need to cancel or can my contract transfer?",
            "I don't want to leave, just moving to {town}, what do I do?",
            "I'm moving house, how do I update my address?",
            "Please change my billing address to {street}, {town} {postcode}.",
            "We're moving to {town} next month, can my broadband move with us?",
            "I need to update my address on the account, I've moved.",
            "Can I take my broadband to my new home at {postcode}?",
            "My bills are going to my old address, please update it.",
            "How do I change my address in the app? I can't find the option.",
            "Moving on the {n}th, what happens to my contract and router?",
            "Update my delivery address for order {order} please.",
            "I've moved in with my partner, please change the address on {account}.",
        ],
        "short": ["change address", "moving house", "update my address", "new address {postcode}",
                  "home move broadband"],
        "detail": ["The new postcode is {postcode}.", "We move on the {n}th.",
                   "I want to keep the same plan.", "My account is {account}.",
                   "The old address was {street}."],
    },
    "lost_stolen_phone": {
        "core": [
            "Phone stolen, I need my SIM blocked and a new one activated.",
            "My phone was stolen last night, please block my SIM.",
            "I've lost my {phone}, how do I stop anyone using my number?",
            "Someone stole my phone in {town}, I need a replacement SIM with the same number.",
            "Phone got nicked, can you bar the IMEI?",
            "Lost my phone on holiday in {country}, what do I do?",
            "My {phone} was stolen, do I still have to pay the device plan?",
            "Please put a stop on my number {number}, phone's been stolen.",
            "I dropped my phone on the train and it's gone, can I get a new SIM?",
            "My phone was taken from my bag, I have a crime reference number.",
            "Can you check if my stolen phone has been used since {month}?",
            "Lost phone, need to block the SIM and order a replacement.",
        ],
        "short": ["phone stolen", "lost my phone", "block my sim", "stolen phone help",
                  "bar my phone", "lost phone replacement sim"],
        "detail": ["The crime reference is {ticket}.", "It was a {phone}.",
                   "I'm using a friend's phone to write this.", "My number is {number}.",
                   "It happened on {street}.", "Please do it urgently."],
    },
    "data_usage": {
        "core": [
            "Is it worth upgrading or am I just using more data than I think?",
            "Before I upgrade, can you show me my usage for the last {n} months?",
            "How much data do I have left this month?",
            "I got a text saying I've used {pct}% of my data, how?",
            "Why have I used {gb}GB already? I've barely used my phone.",
            "Where can I check my data usage in the app?",
            "My data ran out after {days}, something is eating it.",
            "Can you tell me what's using all my mobile data?",
            "When does my data allowance reset?",
            "I'm on {plan}, how much data is included?",
            "Do unused GB roll over to next month?",
            "My usage in the app doesn't match what my phone says.",
            "How do I set a data cap so I don't go over my allowance?",
            "Does hotspot use come out of my normal data allowance?",
        ],
        "short": ["data left?", "check data usage", "data allowance", "how much data",
                  "data ran out", "used {pct}% data already"],
        "detail": ["I mostly use wifi at home.", "My number is {number}.", "I'm on {plan}.",
                   "It happened within {days}.", "Background app refresh is off."],
    },
}

# Sentences one intent borrows from a confusable one: they sit in the detail slot so the words
# of the other intent appear without changing what the customer asks for.
CROSS = {
    "billing_dispute": ["I'd like it refunded to my card.", "My payment went through fine.",
                        "I'm thinking about cancelling over this."],
    "refund_status": ["The bill was wrong in the first place.", "It was an overcharge on my bill.",
                      "I cancelled my contract in {month}."],
    "payment_failed": ["I don't understand my bill either.", "The bill is {amount} this month."],
    "network_outage": ["Before this it was slow for a while.", "Speed was fine until today.",
                       "I've reset the router twice."],
    "slow_internet": ["It isn't completely down, just slow.", "No outage showing on your site.",
                      "Signal bars are full."],
    "router_setup": ["The internet is slow until I get this sorted.",
                     "Not sure if it's an outage or my setup."],
    "upgrade_plan": ["I keep running out of data.", "My data usage is always over."],
    "data_usage": ["I might need to upgrade.", "Is a bigger plan worth it?"],
    "sim_activation": ["I'm also porting my number from another network.",
                       "I have a PAC code ready."],
    "port_number": ["The new SIM is in my phone already.", "I activated the SIM yesterday."],
    "lost_stolen_phone": ["I'll need to activate a new SIM.", "I'm abroad at the moment."],
    "change_address": ["Will my broadband speed be the same there?",
                       "I don't want to cancel, just move."],
    "cancel_contract": ["The bill keeps going up.", "The internet has been slow for months."],
    "roaming": ["I'm worried about the bill when I get back.", "Will it use my data allowance?"],
}

# Context anyone might add, whatever they ask: noise shared by every intent.
GENERIC = ["I've been a customer for {n} years and never had a problem until now.",
           "I've already spoken to {n} different people about this.",
           "The chat bot in the app was no help.", "I tried calling but the line was busy.",
           "My name is {fullname}.", "Please call me back on {number}.",
           "Your website just goes round in circles.", "I'm writing on behalf of my mum.",
           "I'd rather sort this by email.", "I'm at work so email is best."]

# Messages that honestly fit two intents: the customer meant one (drawn here), but the words
# alone cannot tell which. They cap what any student can reach, as real traffic does.
AMBIGUOUS = [
    (["internet not working", "internet not working properly {days}", "wifi problems again",
      "broadband playing up", "connection issues in {town}", "internet keeps cutting out",
      "no internet on and off {days}", "the internet is rubbish today"],
     ["slow_internet", "network_outage"]),
    (["question about money taken from my account", "money back please", "about the {amount}",
      "you owe me {amount}", "{amount} taken, want it back", "sort out my account balance"],
     ["refund_status", "billing_dispute"]),
    (["problem paying my bill", "bill issue {account}", "my bill payment",
      "issue with {amount} payment"],
     ["payment_failed", "billing_dispute"]),
    (["need more data", "data plan question", "running out of data every month",
      "data options for {plan}"],
     ["upgrade_plan", "data_usage"]),
    (["new sim and number", "sim and number transfer help", "number not working on new sim",
      "new sim, old number?"],
     ["sim_activation", "port_number"]),
    (["wifi not working after setup", "hub lights red", "router problem",
      "router keeps disconnecting"],
     ["router_setup", "network_outage", "slow_internet"]),
    (["moving house, what about my contract", "moving away, need to sort my account",
      "leaving the area next month"],
     ["change_address", "cancel_contract"]),
    (["need a new sim", "replacement sim please", "sim card problem"],
     ["lost_stolen_phone", "sim_activation"]),
    (["phone not working abroad", "no signal in {country}"], ["roaming", "network_outage"]),
]

# Words people use interchangeably; swapped at random so no phrasing is tied to one template.
SYNONYMS = {
    "broadband": ["internet", "wifi", "fibre", "broadband"],
    "internet": ["broadband", "wifi", "connection", "internet"],
    "bill": ["invoice", "statement", "bill"],
    "phone": ["mobile", "handset", "phone"],
    "cancel": ["terminate", "end", "cancel"],
    "charged": ["billed", "charged"],
    "charge": ["fee", "charge", "payment"],
    "slow": ["sluggish", "laggy", "slow", "rubbish"],
    "router": ["hub", "router", "modem"],
    "refund": ["money back", "reimbursement", "refund"],
    "want": ["need", "would like", "want"],
    "help": ["assistance", "help", "support"],
    "account": ["account", "acct", "profile"],
    "contract": ["contract", "plan", "agreement"],
    "signal": ["reception", "signal", "coverage"],
    "number": ["number", "mobile number", "phone number"],
}

OPENERS = {
    "polite": ["Hi,", "Hello,", "Hi there,", "Good morning,", "Good afternoon,", "Hello team,",
               "Hi Northwind,", "Dear Sir/Madam,", "Hiya,", "Hello, hope you're well."],
    "angry": ["This is ridiculous.", "I'm absolutely fed up.", "Third time contacting you!!",
              "Honestly, useless.", "Not happy at all.", "Sort this out.", "Unbelievable.",
              "I've been on hold for an hour."],
    "neutral": ["", "", "", "Quick question.", "Hi", "Hello", "Query:", "Help please."],
}
CLOSERS = {
    "polite": ["Thanks.", "Thank you!", "Many thanks, {name}", "Cheers", "Thanks in advance.",
               "Kind regards, {fullname}", "Appreciate the help.", "Thanks, {name}"],
    "angry": ["Sort it out now.", "Absolutely disgraceful service.", "I want this fixed TODAY.",
              "I will be complaining to the ombudsman.", "Sick of this.", "Fix it!!!",
              "Considering leaving after this."],
    "neutral": ["", "", "", "Thanks", "thx", "Account {account}.", "Ta"],
}

KEYBOARD = {
    "a": "qsz", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj",
    "i": "uo", "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o",
    "q": "w", "r": "et", "s": "ad", "t": "ry", "u": "yi", "v": "cb", "w": "qe", "x": "zc",
    "y": "tu", "z": "x",
}


def typo(word, rng):
    """One realistic slip in a word: swap, drop, double or a neighbouring key."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 3:
        return word
    i = rng.choice(letters[1:])
    kind = rng.random()
    if kind < 0.3 and i + 1 < len(word) and word[i + 1].isalpha():
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind < 0.55:
        return word[:i] + word[i + 1:]
    if kind < 0.75:
        return word[:i] + word[i] + word[i:]
    near = KEYBOARD.get(word[i].lower())
    return word[:i] + rng.choice(near) + word[i + 1:] if near else word


def add_typos(text, rng, rate):
    words = text.split(" ")
    return " ".join(typo(w, rng) if rng.random() < rate else w for w in words)


def fill(template, s):
    return template.format(**s)


def casual(text, rng):
    """Lower-case, fewer apostrophes and full stops: how people type on a phone."""
    text = text.lower()
    if rng.random() < 0.6:
        text = text.replace("'", "")
    if rng.random() < 0.5:
        text = text.replace(". ", " ").rstrip(".")
    if rng.random() < 0.3:
        for a, b in [(" you ", " u "), (" are ", " r "), (" please", " pls"),
                     (" because ", " cos "), (" thanks", " thx")]:
            text = text.replace(a, b)
    return text


def shout(text, rng):
    """Angry emphasis: a capitalised word or two and extra exclamation marks."""
    words = text.split(" ")
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(len(words))
        if len(words[i]) > 3 and words[i].isalpha():
            words[i] = words[i].upper()
    text = " ".join(words)
    if rng.random() < 0.5:
        text = text.rstrip(".") + rng.choice(["!", "!!", "!!!", "?!"])
    return text


def compose(intent, rng):
    spec = INTENTS[intent]
    s = slots(rng)
    tone = rng.choices(["polite", "angry", "neutral"], weights=[4, 2, 4])[0]
    length = rng.choices(["short", "medium", "long"], weights=[2, 5, 3])[0]
    if length == "short":
        text = fill(rng.choice(spec["short"]), s)
        if rng.random() < 0.3:
            text = fill(rng.choice(OPENERS["neutral"][3:]), s) + " " + text
        if tone == "angry":
            text = shout(text, rng)
        elif rng.random() < 0.5:
            text = text + rng.choice(["", "?", " pls", " please", ".", " asap"])
    else:
        parts = []
        opener = fill(rng.choice(OPENERS[tone]), s)
        if opener and rng.random() < 0.8:
            parts.append(opener)
        parts.append(fill(rng.choice(spec["core"]), s))
        n_details = 1 if length == "medium" else rng.randint(2, 3)
        pool = spec["detail"] + CROSS.get(intent, [])
        for d in rng.sample(pool, min(n_details, len(pool))):
            if length == "medium" and rng.random() < 0.5:
                break
            parts.append(fill(d, s))
        if length == "long" and rng.random() < 0.6:
            parts.insert(rng.randint(1, len(parts)), fill(rng.choice(GENERIC), s))
        if length == "long" and rng.random() < 0.5:
            parts.append(fill(rng.choice(spec["core"]), s))  # people repeat themselves
        closer = fill(rng.choice(CLOSERS[tone]), s)
        if closer and rng.random() < 0.7:
            parts.append(closer)
        if len(parts) > 1 and parts[0].endswith(",") and not parts[1].startswith("I"):
            parts[1] = parts[1][0].lower() + parts[1][1:]  # "Hi, how do I..."
        text = " ".join(parts)
        if tone == "angry" and rng.random() < 0.6:
            text = shout(text, rng)
    text = paraphrase(text, rng)
    if rng.random() < 0.3:
        text = casual(text, rng)
    if rng.random() < 0.35:
        text = add_typos(text, rng, rng.choice([0.04, 0.08, 0.15]))
    return " ".join(text.split())


def paraphrase(text, rng):
    words = text.split(" ")
    for i, w in enumerate(words):
        core = w.strip(".,!?")
        alts = SYNONYMS.get(core)
        if alts and rng.random() < 0.35:
            words[i] = w.replace(core, rng.choice(alts))
    return " ".join(words)


def compose_ambiguous(rng):
    texts, intents = rng.choice(AMBIGUOUS)
    s = slots(rng)
    text = fill(rng.choice(texts), s)
    if rng.random() < 0.4:
        text = fill(rng.choice(OPENERS["polite"] + OPENERS["neutral"][3:]), s) + " " + text
    if rng.random() < 0.3:
        text = text + " " + fill(rng.choice(CLOSERS["polite"] + CLOSERS["angry"]), s)
    if rng.random() < 0.3:
        text = add_typos(text, rng, 0.08)
    return " ".join(text.split()), rng.choice(intents)


def normalized(text):
    return " ".join(text.lower().split())


def generate():
    rng = random.Random(SEED)
    labels = list(INTENTS)
    # uneven but not extreme class sizes, as in real traffic
    counts = {label: rng.randint(95, 150) for label in labels}
    seen = set()
    rows = []
    for label in labels:
        made, attempts = 0, 0
        while made < counts[label]:
            attempts += 1
            if attempts > counts[label] * 50:
                sys.exit(f"make_demo_data: cannot make {counts[label]} distinct '{label}' messages")
            text = compose(label, rng)
            key = normalized(text)
            if key in seen or len(text.split()) < 3:
                continue
            seen.add(key)
            rows.append((text, label))
            made += 1
    n_ambiguous, attempts = len(rows) * 8 // 100, 0
    while n_ambiguous > 0:
        attempts += 1
        if attempts > 100000:
            sys.exit("make_demo_data: cannot make enough distinct ambiguous messages")
        text, label = compose_ambiguous(rng)
        key = normalized(text)
        if key in seen or len(text.split()) < 3:
            continue
        seen.add(key)
        rows.append((text, label))
        n_ambiguous -= 1
    rng.shuffle(rows)
    return labels, [{"id": f"nw-{i + 1:05d}", "text": t, "label": lab}
                    for i, (t, lab) in enumerate(rows)]


def render(labels, rows):
    messages = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n"
                       for r in rows)
    return messages, json.dumps(labels, indent=2) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "demo"), help="output folder")
    parser.add_argument("--check", action="store_true",
                        help="fail if the files in --out differ from what this script makes")
    args = parser.parse_args()
    labels, rows = generate()
    messages, labels_json = render(labels, rows)
    files = {"messages.jsonl": messages, "labels.json": labels_json}
    if args.check:
        stale = []
        for name, data in files.items():
            path = os.path.join(args.out, name)
            try:
                with open(path, encoding="utf-8") as f:  # the committed demo data
                    if f.read() != data:
                        stale.append(name)
            except OSError:
                stale.append(name)
        if stale:
            sys.exit("make_demo_data: out of date: " + ", ".join(stale) +
                     " (run python3 scripts/make_demo_data.py)")
        return
    os.makedirs(args.out, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:  # demo output
            f.write(data)
    print(f"make_demo_data: {len(rows)} messages over {len(labels)} intents in {args.out}")


if __name__ == "__main__":
    main()
