// The live parts of the pages. Every page reads without this script.
"use strict";
