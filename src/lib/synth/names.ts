/**
 * Word lists for synthetic people and places. Invented combinations of common names;
 * any resemblance to a real patient is chance. The non-ASCII lists are used when a
 * character set other than ASCII is chosen, so anonymizers meet names like Müller^Jürgen.
 */
export const FAMILY_ASCII = [
  'Hansen', 'Johansen', 'Olsen', 'Larsen', 'Andersen', 'Pedersen', 'Nilsen', 'Kristiansen', 'Jensen', 'Karlsen',
  'Berg', 'Haugen', 'Hagen', 'Eriksen', 'Bakke', 'Smith', 'Johnson', 'Garcia', 'Miller', 'Davis',
  'Rodriguez', 'Martinez', 'Nguyen', 'Schmidt', 'Schneider', 'Fischer', 'Weber', 'Meyer', 'Wagner', 'Becker',
] as const;
export const GIVEN_ASCII = [
  'Ola', 'Kari', 'Per', 'Ingrid', 'Lars', 'Anne', 'Jon', 'Sigrid', 'Erik', 'Nora',
  'Emma', 'Liam', 'Olivia', 'Noah', 'Sophia', 'James', 'Maria', 'David', 'Laura', 'Daniel',
  'Hannah', 'Lukas', 'Mia', 'Felix', 'Lea', 'Jonas', 'Anna', 'Paul', 'Clara', 'Maximilian',
] as const;
export const MIDDLE_ASCII = ['Marie', 'Elisabeth', 'Johan', 'Andreas', 'Louise', 'Thomas', 'Grace', 'Lee'] as const;

/** Representable in ISO 8859-1 (ISO_IR 100), every one with at least one non-ASCII letter. */
export const FAMILY_LATIN1 = [
  'Müller', 'Søreide', 'Åsheim', 'Brænd', 'Øvrebø', 'Lindstrøm', 'Gómez', 'Pérez', 'Höglund', 'Færøy',
  'Schäfer', 'Krüger', 'Jäger', 'Nuñez', 'Ibáñez', 'Ødegård', 'Sæther', 'Björk', 'Ekström', 'François',
] as const;
export const GIVEN_LATIN1 = [
  'Jürgen', 'Sølvi', 'Åse', 'Bjørn', 'Øystein', 'Jörg', 'José', 'Inés', 'Håkon', 'Renée',
  'Søren', 'Zoë', 'Mårten', 'Ingrid', 'Kari', 'Per', 'Ola', 'Anne', 'Emma', 'Lars',
] as const;
/** Only UTF-8 (ISO_IR 192) can carry these: letters outside ISO 8859-1. */
export const FAMILY_UTF8_ONLY = ['Wiśniewski', 'Dvořák', 'Łukaszewicz', 'Şahin', 'Nowak-Żak', 'Čapek'] as const;
export const GIVEN_UTF8_ONLY = ['Łukasz', 'Zdeněk', 'Małgorzata', 'Ğülşen', 'Jiří', 'Agnieszka'] as const;

export const STREETS_ASCII = [
  'Haukelandsveien', 'Jonas Lies vei', 'Storgata', 'Kirkeveien', 'Gilman Drive', 'Torrey Pines Road',
  'Main Street', 'Elm Street', 'Strandgaten',
] as const;
export const STREETS_LATIN1 = ['Hauptstraße', 'Bahnhofstraße', 'Møllendalsveien', 'Åsaveien', 'Kålhagen'] as const;
export const CITIES = [
  { city: 'Bergen', zip: '5021', country: 'Norway', phone: '+47 55' },
  { city: 'Oslo', zip: '0450', country: 'Norway', phone: '+47 22' },
  { city: 'La Jolla', zip: 'CA 92093', country: 'USA', phone: '+1 858' },
  { city: 'San Diego', zip: 'CA 92103', country: 'USA', phone: '+1 619' },
  { city: 'Berlin', zip: '10117', country: 'Germany', phone: '+49 30' },
] as const;

export const INSTITUTIONS = [
  { name: 'Haukeland University Hospital', address: 'Haukelandsveien 22, 5021 Bergen, Norway', department: 'MMIV Radiology', issuer: 'HUS', tz: '+0100' },
  { name: 'UC San Diego Health', address: '200 W Arbor Dr, San Diego, CA 92103, USA', department: 'Radiology Research', issuer: 'UCSD', tz: '-0800' },
  { name: 'Oslo University Hospital', address: 'Sognsvannsveien 20, 0372 Oslo, Norway', department: 'Neuroradiology', issuer: 'OUS', tz: '+0100' },
  { name: 'Charite Universitaetsmedizin', address: 'Chariteplatz 1, 10117 Berlin, Germany', department: 'Neuroradiologie', issuer: 'CHA', tz: '+0100' },
] as const;

export const STUDY_DESCRIPTIONS = ['Head^Brain', 'MR HEAD WO CONTRAST', 'Research^Neuro', 'MR BRAIN RESEARCH PROTOCOL'] as const;
