-- Server-only state of an open round (a blackjack hand's shoe and actions). Never returned to
-- players; cleared when the round settles.
ALTER TABLE game_rounds ADD COLUMN state TEXT;
