/** The page's one API client. */
import { UiApi } from '../lib/api.js';

export const api = new UiApi();
