export { getCommand } from './operator-commands.js';
